"""What the text protocol's parsers, dispatchers and the server share: limits, reply words
and outcome codes, each defined here once.

memcached 1.6.18's values; its names where it has one (``KEY_MAX_LENGTH``). The binary
protocol's own status codes are in :mod:`.binary`; the dispatchers' success replies
(``STORED``, ``END``...) are theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

# -- limits -------------------------------------------------------------------------------

KEY_MAX_LENGTH: Final = 250
# memcached closes a connection whose pending line passes this without a newline,
# unless it is a get/gets (multi-gets of thousands of keys are legal).
MAX_LINE_WITHOUT_NEWLINE: Final = 2048
# A get/gets line may be long (150,000 keys is 1.5 MB). memcached holds the whole line, as
# it must: one bad key anywhere voids the reply, so nothing can be answered before the
# newline. It grows its buffer until malloc fails, then answers READ_NO_MEMORY and closes;
# here that happens past this many bytes, so one client cannot take all the memory.
MAX_GET_LINE: Final = 64 << 20
# A complete retrieval line longer than this is answered in slices of about this many
# bytes of keys (Retrieve events with last=False but the final one), so that its keys are
# never all Python objects at once: memory stays about the line's size, as memcached's.
LONG_LINE: Final = 64 * 1024
# memcached tokenizes at most 23 tokens of a line (MAX_TOKENS 24 with the terminator).
MAX_TOKENS: Final = 23
# memcached's MFLAG_MAX_OPT_LENGTH: more tokens than this (command, key, flags and its
# terminator token all counted) is an error.
MAX_META_TOKENS: Final = 20
# memcached's MFLAG_MAX_OPAQUE_LENGTH, counting the leading 'O'.
MAX_OPAQUE_LENGTH: Final = 32
# ms data lengths memcached accepts: 0..INT_MAX - 2.
MAX_DATA_LENGTH: Final = 0x7FFFFFFF - 2
#: The largest ``config set`` data block read; a larger one is discarded unread.
MAX_CONFIG_BLOCK: Final = 1024 * 1024

ItemFits = Callable[[int, int, int], bool]
"""(key length, flags, value length) -> whether such an item can ever be stored."""


def always_fits(nkey: int, flags: int, nbytes: int) -> bool:
    """The :data:`ItemFits` of a parser that has no cache behind it (tests, tools)."""
    return True


# -- reply words ----------------------------------------------------------------------------

ERROR: Final = b"ERROR\r\n"
BAD_FORMAT: Final = b"CLIENT_ERROR bad command line format\r\n"
BAD_DATA_CHUNK: Final = b"CLIENT_ERROR bad data chunk\r\n"
INVALID_EXPTIME: Final = b"CLIENT_ERROR invalid exptime argument\r\n"
INVALID_DELTA: Final = b"CLIENT_ERROR invalid numeric delta argument\r\n"
TOO_LARGE: Final = b"SERVER_ERROR object too large for cache\r\n"
NO_MEMORY: Final = b"SERVER_ERROR out of memory storing object\r\n"
NON_NUMERIC: Final = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
DELTA_NO_MEMORY: Final = b"SERVER_ERROR out of memory\r\n"
READ_NO_MEMORY: Final = b"SERVER_ERROR out of memory reading request\r\n"
# memcached's answer when memory runs out while a value is read into its item (its chunks
# are taken as the bytes come); the rest of the value is then discarded.
VALUE_NO_MEMORY: Final = b"SERVER_ERROR Out of memory during read\r\n"
GET_OOM: Final = b"SERVER_ERROR out of memory writing get response\r\n"
DELETE_USAGE: Final = b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
CONFIG_TOO_LARGE: Final = b"SERVER_ERROR config too large\r\n"
# The meta commands' (protocol.meta).
BAD_TOKEN: Final = b"CLIENT_ERROR bad token in command line format\r\n"
INVALID_FLAG: Final = b"CLIENT_ERROR invalid flag\r\n"
DUPLICATE_FLAG: Final = b"CLIENT_ERROR duplicate flag\r\n"
INVALID_OR_DUPLICATE: Final = b"CLIENT_ERROR invalid or duplicate flag\r\n"
OPAQUE_TOO_LONG: Final = b"CLIENT_ERROR opaque token too long\r\n"
DECODING_KEY: Final = b"CLIENT_ERROR error decoding key\r\n"
MG_TOO_MANY_FLAGS: Final = b"CLIENT_ERROR options flags are too long\r\n"
TOO_MANY_FLAGS: Final = b"CLIENT_ERROR options flags too long\r\n"
MS_BAD_MODE: Final = b"CLIENT_ERROR invalid mode for ms M token\r\n"
MA_BAD_MODE: Final = b"CLIENT_ERROR invalid mode for ma M token\r\n"


# -- outcome codes --------------------------------------------------------------------------


class Outcome:
    """What the connection does after a request besides sending its reply: what a
    dispatcher's handler returns."""

    CONTINUE: Final = 0
    CLOSE: Final = 1  # close after sending what is queued
    MORE: Final = 2  # send what is queued, then handle Dispatcher.take_remainder()
    CLOSE_ERROR: Final = 3  # CLOSE, for the client's fault (watch: reason=error)
    AUTH_FAILED: Final = 4  # CONTINUE, after a failed authentication (the server may delay)


# What TextParser.serve returns besides a handler's outcome (negative: no clash).
#: The replies passed the output bound.
OUTPUT_FULL: Final = -1
#: A request made the sink stop being plain (an observer arrived).
NOT_PLAIN: Final = -2
