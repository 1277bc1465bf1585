"""The data layer's worker pool: ordered results, workers leave Ctrl-C to the main process."""

from __future__ import annotations

import signal

from asl_cli.data.pool import imap_ordered


def test_results_keep_input_order_in_processes():
    assert list(imap_ordered(abs, [-3, 1, -2, 5, -8], 2)) == [3, 1, 2, 5, 8]


def test_workers_ignore_sigint_main_process_does_not():
    handlers = list(imap_ordered(signal.getsignal, [signal.SIGINT] * 2, 2))
    assert handlers == [signal.SIG_IGN, signal.SIG_IGN]
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
