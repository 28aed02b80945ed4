"""Block responders that reach firewalls through their management APIs.

One module per vendor (webhook, opnsense, panos, fortigate, cloudflare, awswaf), all built
on :mod:`responders.plugins.http` (timeouts, retries with backoff and jitter, a token
bucket per target, TLS verification, credentials from env vars or files) and
:mod:`responders.plugins.base` (the shared BlockResponder plumbing). They register under
the ``sekimori.responders`` entry-point group like any third-party plugin.
"""
