"""The webhook outbox: signature contract, retry schedule, delivery worker and admin."""
