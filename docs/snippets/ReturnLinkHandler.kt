// ReturnLinkHandler.kt: the Android side of return-router (see docs/android.md).
//
// tests/router/test_docs.py reads this file: every /v1 path, JSON key (getString("…"), put("…", …)),
// query item and HTTP status code below must be one return-router really uses, so it cannot drift.
// Host and paths: those of your route table (`return-router app-config android` prints the filters).

package com.example.shop.checkout

import android.net.Uri
import android.os.Bundle
import android.os.SystemClock
import androidx.activity.ComponentActivity
import androidx.browser.customtabs.CustomTabsIntent
import androidx.lifecycle.lifecycleScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import org.json.JSONObject
import java.net.HttpURLConnection
import java.net.URL

object ReturnPaths {
    const val RESULT = "/amazon-pay/result"  // flow = "success"
    const val CANCEL = "/amazon-pay/cancel"  // flow = "cancel"
    const val ERROR = "/amazon-pay/error"    // flow = "error"
}

sealed interface CheckoutResult {
    data class Paid(val state: String) : CheckoutResult   // "completed" or "authorized"
    object StillPending : CheckoutResult                  // "we'll notify you": the webhook follows
    object Declined : CheckoutResult                      // offer Amazon Pay again with a new checkout
    object Canceled : CheckoutResult
    object Expired : CheckoutResult
    object Failed : CheckoutResult
    object TryAgainLater : CheckoutResult                 // Amazon Pay or the network unreachable
    data class OpenInBrowser(val uri: Uri) : CheckoutResult  // return-router's page explains the link
    object BackToCart : CheckoutResult                    // the buyer left Amazon's page
}

/** The button: your backend called POST /v1/checkouts and passed its `button` object on. Hand the
 *  three strings, unchanged, to the Amazon Pay Mobile SDK's button (renderButton or initCheckout, as
 *  Amazon's guide shows): the signature covers payloadJSON byte for byte. */
data class ButtonParameters(val payloadJSON: String, val signature: String, val publicKeyId: String) {
    companion object {
        fun from(checkout: JSONObject): ButtonParameters {
            val button = checkout.getJSONObject("button")
            return ButtonParameters(button.getString("payloadJSON"), button.getString("signature"),
                button.getString("publicKeyId"))
        }
    }
}

class ReturnRouter(private val base: String) {  // "https://pay.example.com"
    private data class Answer(val status: Int, val json: JSONObject, val retryAfter: Long)

    private companion object {
        // Above return-router's `[amazon_pay] deadline` (60 s by default): one call may wait that long for
        // Amazon, and a client that gives up sooner misses an answer the server then stores (docs/ios.md).
        // HttpURLConnection's default is no timeout at all.
        const val REQUEST_TIMEOUT_MS = 90_000
        const val CONNECT_TIMEOUT_MS = 10_000
        const val RETRY_WINDOW_MS = 60_000L  // no finalize try starts later than this after the first
    }

    suspend fun handle(link: Uri): CheckoutResult = when (link.path) {
        ReturnPaths.RESULT -> {
            // App Links cannot require the session id in the query (android:path matches the path only):
            // a result link without one is not a return from Amazon, so the browser page handles it.
            val ref = link.getQueryParameter("ref")
            val sessionId = link.getQueryParameter("amazonCheckoutSessionId")  // every name the files claim
                ?: link.getQueryParameter("CheckoutSessionId") ?: link.getQueryParameter("checkoutSessionId")
            if (ref.isNullOrEmpty() || sessionId.isNullOrEmpty()) CheckoutResult.OpenInBrowser(link)
            else finalize(sessionId, ref)
        }
        ReturnPaths.CANCEL, ReturnPaths.ERROR -> CheckoutResult.BackToCart  // the same button works until expiresAt
        else -> CheckoutResult.OpenInBrowser(link)
    }

    suspend fun finalize(sessionId: String, ref: String): CheckoutResult {
        val body = JSONObject().put("ref", ref).toString()
        val giveUp = SystemClock.elapsedRealtime() + RETRY_WINDOW_MS
        repeat(5) {  // finalize is exactly-once on the server: repeating it never pays twice
            if (SystemClock.elapsedRealtime() >= giveUp) return CheckoutResult.TryAgainLater
            val answer = send("POST", "/v1/checkout-sessions/${Uri.encode(sessionId)}/finalize", body)
            when (answer?.status) {
                null -> delay(2_000)
                200 -> return paidOrOutcome(answer, sessionId, ref)
                202 -> return poll(sessionId, ref, answer.retryAfter)
                503 -> delay(answer.retryAfter * 1_000)  // amazon_unavailable, in_progress, unavailable (or a proxy's 5xx)
                else -> return outcome(answer, sessionId, ref)
            }
        }
        return CheckoutResult.TryAgainLater
    }

    /** 202: authorization pending at Amazon. Poll for about a minute, then let the webhook tell the backend. */
    private suspend fun poll(sessionId: String, ref: String, first: Long): CheckoutResult {
        var wait = first
        repeat(12) {
            delay(wait * 1_000)
            val answer = send("GET", "/v1/checkout-sessions/${Uri.encode(sessionId)}?ref=${Uri.encode(ref)}", null)
                ?: return@repeat
            wait = answer.retryAfter
            when (answer.status) {
                202, 503 -> Unit
                200 -> return paidOrOutcome(answer, sessionId, ref)
                else -> return outcome(answer, sessionId, ref)
            }
        }
        return CheckoutResult.StillPending
    }

    /** Paid only when the API says so: a 200 without a paid `state` (a captive portal's page, say) is not. */
    private fun paidOrOutcome(answer: Answer, sessionId: String, ref: String): CheckoutResult {
        val state = answer.json.optString("state")
        return if (state == "completed" || state == "authorized") CheckoutResult.Paid(state)
        else outcome(answer, sessionId, ref)
    }

    private fun outcome(answer: Answer, sessionId: String, ref: String): CheckoutResult {
        val code = answer.json.optJSONObject("error")?.optString("code")
        return when {
            answer.status == 402 -> CheckoutResult.Declined
            answer.status == 409 && code == "checkout_canceled" -> CheckoutResult.Canceled
            answer.status == 410 -> CheckoutResult.Expired
            answer.status == 422 -> CheckoutResult.Failed
            else -> CheckoutResult.OpenInBrowser(  // 400 malformed, 404 unknown, 409 another session
                Uri.parse(base + ReturnPaths.RESULT).buildUpon().appendQueryParameter("ref", ref)
                    .appendQueryParameter("amazonCheckoutSessionId", sessionId).build())
        }
    }

    private suspend fun send(method: String, path: String, body: String?): Answer? = withContext(Dispatchers.IO) {
        runCatching {
            val connection = URL(base + path).openConnection() as HttpURLConnection
            connection.requestMethod = method
            connection.connectTimeout = CONNECT_TIMEOUT_MS
            connection.readTimeout = REQUEST_TIMEOUT_MS
            if (body != null) {
                connection.doOutput = true
                connection.setRequestProperty("Content-Type", "application/json")
                connection.outputStream.use { it.write(body.toByteArray()) }
            }
            val status = connection.responseCode
            val stream = if (status < 400) connection.inputStream else connection.errorStream
            val text = stream?.bufferedReader()?.use { it.readText() }.orEmpty()
            val retryAfter = connection.getHeaderField("Retry-After")?.toLongOrNull() ?: 5
            val json = if (text.isEmpty()) JSONObject() else runCatching { JSONObject(text) }.getOrNull()
            // A 502 or 504, or any 5xx without the API's error JSON, is the proxy in front answering while
            // return-router is down or restarting: wait and repeat it like a 503, never open it in the browser.
            val fromProxy = status in 502..504 || (status >= 500 && json?.has("error") != true)
            if (fromProxy) Answer(503, JSONObject(), retryAfter)
            else Answer(status, json ?: error("not JSON"), retryAfter)  // any other non-JSON: a failed call
        }.getOrNull()
    }
}

/** The activity whose manifest entry holds the intent filters from `return-router app-config android`. */
class CheckoutReturnActivity : ComponentActivity() {
    private val router = ReturnRouter("https://pay.example.com")

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val link = intent?.data ?: return finish()
        lifecycleScope.launch {
            when (val result = router.handle(link)) {
                is CheckoutResult.OpenInBrowser ->
                    CustomTabsIntent.Builder().build().launchUrl(this@CheckoutReturnActivity, result.uri)
                else -> show(result)
            }
        }
    }

    private fun show(result: CheckoutResult) { /* your confirmation, retry or cart screen */ }
}
