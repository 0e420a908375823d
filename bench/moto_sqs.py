"""moto's server mode for the SQS bench, without two costs that grow with
the queue's length and say nothing about the daemon:

- every visibility check builds a datetime to get the time (a dozen
  microseconds per message, per call, for every message in the queue);
- every received message recomputes *all* queue attributes (each of which
  walks every message) only to read MessageRetentionPeriod.

Both replacements return what the originals return; nothing else of moto
changes. usage: python3 bench/moto_sqs.py -H 127.0.0.1 -p PORT
"""
import sys
import time

import moto.core.utils as core_utils
import moto.sqs.models as sqs_models
from moto.server import main

_unix_time = core_utils.unix_time


def unix_time(dt=None):
    # utcnow() - epoch, when no time is given, is the wall clock itself
    return time.time() if dt is None else _unix_time(dt)


def unix_time_millis(dt=None):
    return unix_time(dt) * 1000.0


def retention_ok(self, queue_name, message):
    period = int(self.get_queue(queue_name).message_retention_period)
    return period + message.sent_timestamp / 1000 > unix_time()


sqs_models.unix_time = unix_time
sqs_models.unix_time_millis = unix_time_millis
sqs_models.SQSBackend.is_message_valid_based_on_retention_period = retention_ok

if __name__ == "__main__":
    main(sys.argv[1:])
