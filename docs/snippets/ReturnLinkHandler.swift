// ReturnLinkHandler.swift: the iOS side of return-router (see docs/ios.md).
//
// tests/router/test_docs.py reads this file: every /v1 path, JSON key (`json["…"]`), query item
// and HTTP status code below must be one return-router really uses, so it cannot drift from the API.
// Host and paths: those of your route table (`return-router app-config ios` lists the hosts).

import Foundation
import SafariServices
import UIKit

enum ReturnPaths {
    static let result = "/amazon-pay/result"  // flow = "success"
    static let cancel = "/amazon-pay/cancel"  // flow = "cancel"
    static let error = "/amazon-pay/error"    // flow = "error"
}

/// What the app shows once a return link opened it.
enum CheckoutResult {
    case paid(state: String)        // "completed" or "authorized": show the confirmation
    case stillPending               // polled for a while: "we'll notify you", the webhook follows
    case declined, canceled, expired, failed  // offer Amazon Pay again with a new checkout
    case tryAgainLater              // Amazon Pay or the network unreachable: retrying is safe
    case openInBrowser(URL)         // a link the app cannot use: return-router's page explains it
    case backToCart                 // the buyer left Amazon's page (cancel / error link)
}

struct ReturnRouter {
    let base: URL  // https://pay.example.com

    /// Above return-router's `[amazon_pay] deadline` (60 s by default): one call may wait that long for
    /// Amazon, and a client that gives up sooner misses an answer the server then stores (docs/ios.md).
    static let requestTimeout: TimeInterval = 90
    /// No finalize try starts later than this after the first (the one under way may take requestTimeout).
    static let retryWindow: TimeInterval = 60

    /// The button: your backend called POST /v1/checkouts and passed its `button` object on.
    /// Hand the three strings, unchanged, to the Amazon Pay Mobile SDK's button (renderButton or
    /// initCheckout, as Amazon's guide shows): the signature covers payloadJSON byte for byte.
    static func buttonParameters(_ json: [String: Any]) -> (payload: String, signature: String, keyId: String)? {
        guard let button = json["button"] as? [String: Any],
              let payload = button["payloadJSON"] as? String,
              let signature = button["signature"] as? String,
              let keyId = button["publicKeyId"] as? String else { return nil }
        return (payload, signature, keyId)
    }

    /// Called from scene(_:continue:) with userActivity.webpageURL.
    func handle(_ link: URL) async -> CheckoutResult {
        guard let parts = URLComponents(url: link, resolvingAgainstBaseURL: false) else { return .openInBrowser(link) }
        let query = Dictionary((parts.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { a, _ in a })
        switch parts.path {
        case ReturnPaths.result:
            // Amazon appends the session id; the ref is the one return-router put into the URL.
            guard let ref = query["ref"], !ref.isEmpty,
                  let sessionId = query["amazonCheckoutSessionId"] ?? query["CheckoutSessionId"]
                      ?? query["checkoutSessionId"],  // every name the association files claim
                  !sessionId.isEmpty else { return .openInBrowser(link) }
            return await finalize(sessionId: sessionId, ref: ref)
        case ReturnPaths.cancel, ReturnPaths.error:
            return .backToCart  // the same button (same ref) works again until expiresAt
        default:
            return .openInBrowser(link)
        }
    }

    func finalize(sessionId: String, ref: String) async -> CheckoutResult {
        var request = URLRequest(url: base.appendingPathComponent("/v1/checkout-sessions/\(sessionId)/finalize"))
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = try? JSONSerialization.data(withJSONObject: ["ref": ref])
        let giveUp = Date().addingTimeInterval(Self.retryWindow)
        for _ in 0..<5 where Date() < giveUp {  // finalize is exactly-once on the server: repeating never pays twice
            guard let (status, json, retryAfter) = await send(request) else { try? await pause(2); continue }
            switch status {
            case 200: return paidOrOutcome(status, json, sessionId: sessionId, ref: ref)
            case 202: return await poll(sessionId: sessionId, ref: ref, after: retryAfter)
            case 503: try? await pause(retryAfter)  // amazon_unavailable, in_progress, unavailable (or a proxy's 5xx)
            default: return outcome(status, json, sessionId: sessionId, ref: ref)
            }
        }
        return .tryAgainLater
    }

    /// 202: authorization pending at Amazon. Poll for about a minute, then let the webhook tell the backend.
    func poll(sessionId: String, ref: String, after first: Double) async -> CheckoutResult {
        var wait = first
        var parts = URLComponents(url: base.appendingPathComponent("/v1/checkout-sessions/\(sessionId)"),
                                  resolvingAgainstBaseURL: false)!
        parts.queryItems = [URLQueryItem(name: "ref", value: ref)]
        for _ in 0..<12 {
            try? await pause(wait)
            guard let (status, json, retryAfter) = await send(URLRequest(url: parts.url!)) else { continue }
            wait = retryAfter
            switch status {
            case 202, 503: continue
            case 200: return paidOrOutcome(status, json, sessionId: sessionId, ref: ref)
            default: return outcome(status, json, sessionId: sessionId, ref: ref)
            }
        }
        return .stillPending
    }

    /// Paid only when the API says so: a 200 without a paid `state` (a captive portal's page, say) is not.
    func paidOrOutcome(_ status: Int, _ json: [String: Any], sessionId: String, ref: String) -> CheckoutResult {
        if let state = json["state"] as? String, state == "completed" || state == "authorized" {
            return .paid(state: state)
        }
        return outcome(status, json, sessionId: sessionId, ref: ref)
    }

    func outcome(_ status: Int, _ json: [String: Any], sessionId: String, ref: String) -> CheckoutResult {
        let code = (json["error"] as? [String: Any])?["code"] as? String
        switch status {
        case 402: return .declined
        case 409 where code == "checkout_canceled": return .canceled
        case 410: return .expired
        case 422: return .failed
        default:  // 400 malformed link, 404 unknown, 409 another session: the page explains
            var page = URLComponents(url: base.appendingPathComponent(ReturnPaths.result), resolvingAgainstBaseURL: false)!
            page.queryItems = [URLQueryItem(name: "ref", value: ref),
                               URLQueryItem(name: "amazonCheckoutSessionId", value: sessionId)]
            return .openInBrowser(page.url!)
        }
    }

    private func send(_ request: URLRequest) async -> (Int, [String: Any], Double)? {
        var request = request
        request.timeoutInterval = Self.requestTimeout  // URLSession's default, 60 s, is not above the deadline
        guard let (data, response) = try? await URLSession.shared.data(for: request),
              let http = response as? HTTPURLResponse else { return nil }
        let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        let retryAfter = Double(http.value(forHTTPHeaderField: "Retry-After") ?? "") ?? 5
        // A 502 or 504, or any 5xx without the API's error JSON, is the proxy in front answering while
        // return-router is down or restarting: wait and repeat it like a 503, never open it in the browser.
        let fromProxy = (502...504).contains(http.statusCode) || (http.statusCode >= 500 && json["error"] == nil)
        return (fromProxy ? 503 : http.statusCode, json, retryAfter)
    }

    private func pause(_ seconds: Double) async throws {
        try await Task.sleep(nanoseconds: UInt64(seconds * 1_000_000_000))
    }
}

/// In-app browser for `.openInBrowser`: Safari View Controller loads the page instead of reopening the app.
func present(_ url: URL, from controller: UIViewController) {
    controller.present(SFSafariViewController(url: url), animated: true)
}
