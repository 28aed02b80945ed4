"""Responders shipped with sekimori (alert responders ``tcp-reset``, ``log``; block
responders ``nftables``, ``ipset``); see docs/responders.md and docs/blocking.md."""
