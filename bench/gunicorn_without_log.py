"""gunicorn settings for `bench/ingest.py --without-log`: each worker books records without
keeping the funds' transparency-log tiles (fund.services.ledger's log_append made a no-op), so
that the benchmark can print what keeping them costs. For that measure only, never a server."""


def post_worker_init(worker):
    import fund.services.ledger as ledger

    ledger.log_append = lambda **kwargs: None
