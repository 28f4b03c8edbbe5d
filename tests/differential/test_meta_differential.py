"""memcachepy must answer the meta protocol (mg ms md ma mn me) byte for byte as memcached 1.6.18.

Same harness as the text-protocol cases (see harness.py and test_text_differential.py). On
top of the harness's normalisation, the CAS values that meta replies carry (the ``c`` return
flag, ``cas=`` in ``me``) are numbered by first appearance together with those of ``VALUE``
lines, so a CAS seen through ``gets`` and through ``mg c`` must agree on both servers.
``{cas:N}`` placeholders in a script are filled from ``gets`` replies (the harness's rule).

Time-dependent return flags (``t``, ``l``, ``la=``, ``exp=``) are only compared where both
servers read them in the same second as the write (one packet), never across a pause.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from .harness import VALUE_LINE, Case, Outcome, Step, Transcript, differences, normalise

K250 = b"k" * 250
K251 = b"k" * 251
# A base64 key of 248 bytes (the longest is 250) that decodes to 184 bytes.
B64_248 = b"QUFB" * 61 + b"QQ=="
BIG = 2_000_000  # larger than the default -I 1m
# A CAS no item has (servers are shared between cases: small literal CAS values may match).
NOCAS = b"999999999999"


def case(case_id: str, *steps: bytes | Step, **options: object) -> Case:
    """A case from steps; plain bytes are a step on connection 0."""
    made = tuple(s if isinstance(s, Step) else Step(s) for s in steps)
    return Case(case_id, made, **options)  # type: ignore[arg-type]


def ms(key: bytes, value: bytes, flags: bytes = b"") -> bytes:
    """An ms command with its data block."""
    sep = b" " if flags else b""
    return b"ms %s %d%s%s\r\n%s\r\n" % (key, len(value), sep, flags, value)


CASES: list[Case] = [
    # --- crafted meta commands (CVE-2020-22570 and its kin): flags past every limit --------
    case(
        "crafted-meta-flags",
        ms(b"k", b"val") + b"mg k " + b"v " * 40 + b"\r\n"
        b"mg k O"
        + b"x" * 40
        + b" v\r\nmg k b v\r\nmg ==== b v\r\nmg "
        + b"k" * 300
        + b" v\r\nma k N0 J"
        + b"9" * 30
        + b"\r\nmd k I T-1 q\r\nmn\r\n"
        b"ms k 4294967296 T0\r\nms k -1\r\nms k 2 I\r\nhi\r\nmg k s v t f c k\r\n",
    ),
    # --- mn, me, routing --------------------------------------------------------------------
    case("mn", b"mn\r\nmn foo bar\r\nmn\r\n"),
    case(
        "unknown-m-commands",
        b"mz\r\nmx k v\r\nm\r\nmgg k\r\nMG k\r\nmz HTTP/1.1\r\nmg\r\nms\r\nmd\r\nma\r\n",
    ),
    case("unknown-longer-m-command-http-closes", b"mn\r\nmzz HTTP/1.1\r\n", probe=False),
    case(
        "me-hit-miss",
        b"me k\r\nset k 5 0 2\r\nhi\r\nme k\r\nget k\r\nme k\r\nme k extra tokens q\r\n"
        + ms(b"t", b"abc", b"T100")
        + b"me t\r\nme\r\nme "
        + K251
        + b"\r\nme "
        + K250
        + b"\r\n",
    ),
    case(
        "me-slab-class-boundaries",
        b"".join(
            ms(b"k%d" % n, b"v" * n, b"F%d" % (n % 2)) + b"me k%d\r\n" % n
            for n in (1, 30, 34, 35, 36, 58, 59, 60, 400, 1000, 5000, 100_000, 600_000)
        ),
    ),
    case(
        "me-base64",
        ms(b"Zm9v", b"hi", b"b") + b"me Zm9v b\r\nme foo\r\nme Zm9v\r\nme Zm9 b\r\n"
        b"me Zm9v b extra\r\nme Zm9v x b\r\nset bar 0 0 1\r\nx\r\nme YmFy b\r\n",
    ),
    # --- mg -----------------------------------------------------------------------------------
    case(
        "mg-miss",
        b"mg k\r\nmg k v\r\nmg k q\r\nmg k v q O1 k\r\nmg k O123 k t\r\nmg k k O1 s v f\r\n"
        b"mg k q k\r\n",
    ),
    case(
        "mg-hit-every-return-flag",
        b"set k 5 0 2\r\nhi\r\nmg k s v f t c k O9 h l\r\nmg k\r\nmg k v\r\nmg k q\r\n"
        b"mg k v q\r\nmg k c f s t\r\nmg k t s f c\r\nmg k Oop\r\nmg k k k\r\n",
    ),
    case(
        "mg-hit-before-and-no-bump",
        b"set a 0 0 1\r\na\r\nmg a h\r\nmg a h\r\nset b 0 0 1\r\nb\r\nmg b u h\r\n"
        b"mg b u h\r\nmg b h\r\nmg b h\r\nset c 0 0 1\r\nc\r\nget c\r\nmg c h v\r\n"
        b"set d 0 0 1\r\nd\r\nmg d v\r\nmg d h\r\nmg nx h\r\n",
    ),
    case("mg-last-access-same-second", b"set a 0 0 1\r\na\r\nmg a l\r\nmg a l h\r\nmg a l u\r\n"),
    case(
        "mg-ttl-update",
        ms(b"k", b"hi", b"T100") + b"mg k t\r\nmg k T30 t\r\nmg k t T40\r\nmg k t\r\n"
        b"mg k T0 t\r\nmg k t\r\nmg k T-1 v\r\nmg k v\r\nset j 0 0 1\r\nj\r\n"
        b"mg j T2592001 v\r\nmg j v\r\nmg nx T30 q\r\nmg nx T30\r\n",
    ),
    case(
        "mg-flag-tokens-and-errors",
        b"set k 0 0 1\r\nk\r\nmg k z\r\nmg k v v\r\nmg k \x80\r\nmg k \x7f\r\nmg k Nabc\r\n"
        b"mg k Tabc\r\nmg k Rabc\r\nmg k Fabc\r\nmg k F1\r\nmg k C1 v\r\nmg k T\r\n"
        b"mg k N\r\nmg k Nx Tx\r\nmg k Fx Tx\r\nmg k Tx Fx\r\nmg k Nx z\r\nmg k z Nx\r\n"
        b"mg k E v\r\nmg k x v\r\nmg k P L v\r\nmg k Pfoo Lbar v\r\nmg k MZ v\r\n"
        b"mg k J5 D3 v\r\nmg k I v\r\nmg k T1.5\r\nmg k T+5 t\r\nmg k T0x10\r\n"
        b"mg k vk\r\nmg k qq\r\nmg k T99999999999\r\nmg k v\r\n",
    ),
    case(
        "mg-key-lengths-and-token-counts",
        b"set " + K250 + b" 0 0 1\r\nx\r\nmg " + K250 + b" v\r\nmg " + K251 + b" v\r\n"
        b"mg " + K251 + b" z z z\r\n"
        b"mg k " + b" ".join(b"%c" % c for c in b"scftlhkvqubPLIOJD") + b"\r\n"
        b"mg k " + b" ".join(b"%c" % c for c in b"scftlhkvqubPLIOJDT") + b"\r\n"
        b"mg k " + b"v " * 30 + b"\r\nmg  k  v \r\n",
    ),
    case(
        "mg-opaque-length",
        b"set k 0 0 1\r\nk\r\nmg k O" + b"o" * 31 + b" v\r\nmg k O" + b"o" * 32 + b" v\r\n"
        b"mg nx O" + b"o" * 32 + b"\r\nmg nx q O" + b"o" * 32 + b"\r\n"
        b"mg k T30 O" + b"o" * 32 + b" t\r\nmg k t\r\n"
        b"mg nv O" + b"o" * 32 + b" N30\r\nmg nv t v\r\nmg nw N30 O" + b"o" * 32 + b"\r\n"
        b"mg nw t v\r\n",
    ),
    case(
        "mg-vivify-lease",
        b"mg k N30 v t c s\r\nmg k N30 v t\r\nmg k N30 v t\r\n"
        + ms(b"k", b"hi", b"T60")
        + b"mg k v t N30\r\nmg j t N30 c\r\nmg j t\r\nmg q N30 q\r\nmg q N30 q k\r\n"
        b"mg z N0 v t\r\nmg z v t\r\nget j q z\r\nmg w u N30 h\r\nmg w h\r\n",
    ),
    case(
        "mg-recache",
        ms(b"k", b"hi", b"T10")
        + b"mg k R30 v\r\nmg k R30 v\r\nmg k R5 v\r\nmg k v\r\n"
        + ms(b"n", b"hi")
        + b"mg n R30 v\r\n"
        + ms(b"r", b"hi", b"T10")
        + b"mg r R5 v\r\nmg r T100 R30\r\nmg r R30 T100\r\nmg r v\r\n"
        + ms(b"s", b"hi", b"T10")
        + b"mg s N30 R30\r\nmg s N30 R30\r\n",
    ),
    case(
        "mg-after-expiry-and-flush",
        ms(b"a", b"x", b"T-1") + ms(b"b", b"y") + b"mg a v\r\nflush_all\r\nmg b v\r\n"
        b"mg b N30 v\r\n",
    ),
    case(
        "mg-pipelined-quiet-with-noop",
        b"set a 1 0 1\r\na\r\nset c 3 0 1\r\nc\r\n"
        b"mg a v q k f\r\nmg b v q k f\r\nmg c v q k f\r\nmg d v q k f\r\nmn\r\n",
    ),
    case(
        "mg-large-value",
        ms(b"big", b"0123456789" * 70_000, b"F3") + b"mg big s f\r\nmg big v\r\n"
        b"ma big\r\nme big\r\n",
    ),
    case(
        "mg-long-line-in-one-packet", b"mg k " + b"v" * 3000 + b"\r\nmg " + b"k " * 1500 + b"\r\n"
    ),
    case(
        "mg-long-line-without-newline-closes",
        Step(b"mn\r\n", sync=True),
        Step(b"mg k " + b"v " * 1100, settle=0.3),
    ),
    case(
        "mg-binary-value",
        b"set k 0 0 6\r\na\r\nb\x00c\r\nmg k v s\r\n" + ms(b"e", b"") + b"mg e v s\r\n",
    ),
    # --- stale-while-revalidate -----------------------------------------------------------------
    case(
        "stale-while-revalidate",
        Step(ms(b"k", b"old", b"T100") + b"gets k\r\n", sync=True),
        Step(b"md k I T30\r\ngets k\r\nmg k v t c\r\nmg k v c\r\nmg k v\r\n", sync=True),
        # recache with the CAS read before the invalidation: older, so accepted as stale
        Step(
            ms(b"k", b"new", b"C{cas:0} I T100 c") + b"mg k v t c\r\nmg k v\r\ngets k\r\n",
            sync=True,
        ),
        Step(ms(b"k", b"newer", b"C{cas:2} I T100") + b"mg k v t\r\nmg k v\r\n"),
    ),
    # (No mg of the same item before an incr in one packet: while memcached still holds an
    # unsent mg reply, the item is referenced and incr writes a new item, dropping its flags.)
    case(
        "stale-flags-under-text-commands",
        Step(
            ms(b"k", b"1", b"T100")
            + ms(b"j", b"ab")
            + ms(b"m", b"5")
            + b"md k I\r\nmd j I\r\nmd m I\r\nmg k v\r\nmg j v\r\nmg m v\r\n",
            sync=True,
        ),
        Step(b"touch k 50\r\nmg k t v\r\nincr m 1\r\nappend j 0 0 1\r\nc\r\nmg j v\r\n", sync=True),
        Step(b"incr k 1\r\nincr j 1\r\n", sync=True),
        Step(b"mg k v\r\nmg m v\r\n", sync=True),
        Step(b"incr k 100\r\n", sync=True),
        b"mg k v\r\nset k 0 0 1\r\nz\r\nmg k v\r\n",
    ),
    case(
        "incr-right-after-mg-in-one-packet",
        Step(ms(b"n", b"10") + b"md n I\r\nmg n v\r\n", sync=True),
        b"mg n\r\nma n MD\r\nmg n v s\r\n",
        differ="memcached writes the new number into a new item (no padding, meta flags "
        "dropped) while an mg reply not yet sent still references the item; memcachepy "
        "has no reply-held item references and always rewrites in place",
    ),
    case(
        "stale-invalidate-without-cas-or-with-newer",
        Step(ms(b"k", b"old") + b"gets k\r\n", sync=True),
        ms(b"k", b"a", b"I")
        + b"mg k v\r\n"
        + ms(b"k", b"b", b"I C99999999")
        + b"mg k v\r\n"
        + b"md nx I\r\nmd nx I q\r\n"
        + ms(b"nx", b"c", b"I C1")
        + b"mg k v\r\n",
    ),
    case(
        "stale-replace-mode-and-token",
        Step(ms(b"k", b"old", b"T100") + b"gets k\r\n", sync=True),
        b"md k I\r\nmg k v\r\n" + ms(b"k", b"rep", b"MR C{cas:0} I") + b"mg k v\r\n"
        b"md k I q\r\nmg k v\r\nmg k v\r\n",
    ),
    # --- ms ---------------------------------------------------------------------------------------
    case(
        "ms-basic",
        ms(b"k", b"hello")
        + b"get k\r\n"
        + ms(b"k", b"v", b"F30 T0")
        + b"gets k\r\n"
        + ms(b"k", b"")
        + b"mg k v f\r\n"
        + ms(b"f", b"x", b"F4294967296")
        + b"mg f f\r\n"
        + ms(b"g", b"x", b"F4294967295")
        + b"mg g f\r\n"
        + ms(b"h", b"x", b"F+7 T+0")
        + b"mg h f t\r\n",
    ),
    case(
        "ms-return-flags",
        ms(b"k", b"a", b"c k O1")
        + ms(b"k", b"b", b"O2 k c")
        + ms(b"k", b"c", b"ME c k O3")
        + ms(b"k", b"d", b"q c")
        + ms(b"k", b"e", b"q ME c k")
        + b"mg k c v\r\n"
        + ms(b"k", b"f", b"k k")
        + ms(b"k", b"g", b"v s t f h l u N30 R1 J1 D1 P L")
        + b"mg k v\r\n",
    ),
    case(
        "ms-modes",
        ms(b"k", b"a", b"ME")
        + ms(b"k", b"b", b"ME")
        + b"mg k v\r\n"
        + ms(b"k", b"c", b"MA")
        + ms(b"k", b"d", b"MP")
        + b"mg k v\r\n"
        + ms(b"x", b"c", b"MA")
        + ms(b"x", b"d", b"MP")
        + ms(b"x", b"e", b"MR")
        + ms(b"k", b"r", b"MR F9")
        + b"mg k v f\r\n"
        + ms(b"k", b"s", b"MS")
        + b"mg k v f\r\n"
        + ms(b"k", b"z", b"MZ")
        + ms(b"k", b"z", b"Ma")
        + ms(b"k", b"z", b"MEE")
        + ms(b"k", b"z", b"M")
        + b"mg k v\r\n"
        + ms(b"k", b"q", b"ME q")
        + b"mg k v\r\n",
    ),
    case(
        "ms-append-keeps-flags-and-ttl",
        ms(b"k", b"a", b"F5 T100")
        + ms(b"k", b"b", b"MA F9 T0")
        + b"mg k v f t\r\n"
        + ms(b"k", b"c", b"MP T5")
        + b"mg k v f t\r\n",
    ),
    case(
        "ms-cas",
        Step(ms(b"k", b"a") + b"gets k\r\n", sync=True),
        ms(b"k", b"b", b"C{cas:0}")
        + ms(b"k", b"c", b"C{cas:0}")
        + ms(b"nx", b"c", b"C1")
        + ms(b"k", b"d", b"C0")
        + ms(b"nx", b"d", b"C0")
        + b"mg k v\r\n"
        + ms(b"nx", b"e", b"C5 ME")
        + b"mg nx v\r\n"
        + ms(b"nx", b"f", b"C5 ME")
        + b"mg nx v\r\n"
        + ms(b"k", b"g", b"C" + NOCAS + b" MA")
        + ms(b"k", b"h", b"C0 MA")
        + b"mg k v\r\n"
        + ms(b"k", b"i", b"C-1")
        + ms(b"k", b"i", b"Cx")
        + b"mg k v\r\n"
        + ms(b"k", b"j", b"C" + NOCAS + b" q")
        + ms(b"zz", b"j", b"C1 q")
        + b"mn\r\n",
    ),
    case(
        "ms-cas-with-append-and-replace",
        Step(ms(b"k", b"a") + b"gets k\r\n", sync=True),
        ms(b"k", b"b", b"MA C{cas:0} c")
        + b"gets k\r\n"
        + ms(b"k", b"c", b"MP C{cas:0}")
        + b"mg k v\r\n"
        + ms(b"k", b"d", b"MR C{cas:0}")
        + b"mg k v\r\n",
    ),
    case(
        "ms-data-length-errors",
        b"ms k\r\nms k abc\r\nhi\r\nms k -1\r\nhi\r\nms k S2 T0\r\nhi\r\n"
        b"ms k 2147483647\r\nhi\r\nms k 4294967297 c\r\nh\r\nmg k v\r\nms k +2\r\nhi\r\n"
        b"ms k 02 T5\r\nhi\r\nmg k v\r\nms " + K251 + b" 1\r\nx\r\nms " + K250 + b" 1\r\nx\r\n"
        b"mg " + K250 + b" v\r\n",
    ),
    case(
        "ms-flag-errors-swallow-the-data",
        b"ms k 2 z\r\nhi\r\nms k 2 v v\r\nhi\r\nms k 2 Tabc\r\nhi\r\nms k 2 Fabc\r\nhi\r\n"
        b"ms k 2 F-1\r\nhi\r\nms k 2 b\r\nhi\r\nms k 2 MZ O" + b"o" * 40 + b"\r\nhi\r\n"
        b"ms k 2 O" + b"o" * 40 + b"\r\nhi\r\nms k 2 O" + b"o" * 31 + b"\r\nhi\r\n"
        b"ms k 2 q z\r\nhi\r\nms k 2 E\r\nhi\r\nms k 2 x\r\nhi\r\nmg k v\r\n",
    ),
    case(
        "ms-too-many-flags",
        b"ms k 1 " + b" ".join(b"%c" % c for c in b"scftlhkvqubPLIOJD") + b"\r\nx\r\n"
        b"ms k 1 " + b" ".join(b"%c" % c for c in b"cftlhkvqubPLIOJD") + b"\r\nx\r\n"
        b"mg k v\r\n",
    ),
    case(
        "ms-bad-data-chunk",
        ms(b"k", b"old") + b"ms k 3\r\nabcde\r\nmg k v\r\nms k 3 q\r\nabcde\r\nmg k v\r\n"
        b"ms k 1\r\na\nmg k v\r\n",
    ),
    case(
        "ms-too-large",
        ms(b"k", b"old")
        + ms(b"k", b"x" * BIG, b"ME")
        + b"mg k v\r\n"
        + ms(b"j", b"old")
        + ms(b"j", b"x" * BIG, b"q MA")
        + b"mg j v\r\n",
    ),
    case(
        "ms-too-large-swallows-what-follows",
        Step(ms(b"j", b"old"), sync=True),
        b"ms j 2000000 q\r\nmg j v\r\n",
        probe=False,
    ),
    case(
        "ms-reply-held-until-data-block-ends",
        Step(ms(b"a", b"1") + b"ms k 10\r\nabc", settle=0.3),
        Step(b"defghij\r\nmg k v\r\n"),
    ),
    case(
        "ms-error-reply-held-while-swallowing",
        Step(b"mn\r\nms k 10 z\r\nabc", settle=0.3),
        Step(b"defghij\r\nmn\r\n"),
    ),
    case(
        "ms-base64-keys",
        ms(b"Zm9v", b"hi", b"b k c") + b"mg foo k v\r\nmg Zm9v b k v\r\nget foo\r\n"
        b"mg Zm9v! b k\r\nmg Z=== b\r\nmg Zg=A b k\r\nmg Zm9 b\r\nmg Zg== b k\r\n"
        + ms(b"YSBi", b"sp", b"b")
        + b"mg YSBi b k v\r\nmd YSBi b k\r\nmg YSBi b v\r\n"
        + ms(B64_248, b"long", b"b")
        + b"mg "
        + B64_248
        + b" b v s\r\n"
        + b"set plain 0 0 1\r\np\r\nmg cGxhaW4= b k v\r\nmg YWJj b N30 k v\r\n"
        b"mg abc k\r\nmg YWJj b k\r\nme YWJj b\r\n"
        + ms(b"cGxhaW4=", b"q", b"b MA")
        + b"mg plain k v\r\n",
    ),
    case(
        "ms-sets-expired-and-flushed",
        ms(b"k", b"a", b"T-1")
        + b"mg k v\r\n"
        + ms(b"k", b"b", b"T2592001")
        + b"mg k v\r\n"
        + ms(b"k", b"c", b"T100")
        + b"flush_all\r\n"
        + ms(b"k", b"d", b"ME")
        + b"mg k v\r\n",
    ),
    # --- md ---------------------------------------------------------------------------------------
    case(
        "md-basic",
        b"md k\r\nmd k q\r\nmd k O1 k\r\nmd k q k O2\r\nset k 0 0 1\r\nk\r\nmd k\r\nmg k v\r\n"
        b"set k 0 0 1\r\nk\r\nmd k q\r\nmd k q\r\nset k 0 0 1\r\nk\r\nmd k O5 k\r\n"
        b"md k\r\nmd\r\nmd " + K251 + b"\r\nmd k z\r\nmd k q q\r\nmd k Tx\r\n"
        b"md k O" + b"o" * 33 + b"\r\nmd k T30\r\n",
    ),
    case(
        "md-cas",
        Step(b"set k 0 0 1\r\nk\r\ngets k\r\n", sync=True),
        b"md k C" + NOCAS + b"\r\nmd k C0\r\nmd k C{cas:0} q\r\nmg k v\r\nmd nx C1\r\n"
        b"set j 0 0 1\r\nj\r\nmd j Cx\r\n",
    ),
    case(
        "md-invalidate",
        Step(ms(b"k", b"v", b"T100") + b"gets k\r\n", sync=True),
        b"md k I T30 k\r\ngets k\r\nmg k t v\r\nmd k I\r\nmg k t v\r\nmg k v\r\n"
        b"md k I C" + NOCAS + b"\r\nmd k C{cas:1} I q\r\nmg k v c\r\nmd k\r\nmg k v\r\n",
    ),
    # --- ma ---------------------------------------------------------------------------------------
    case(
        "ma-basic",
        b"ma n\r\nma n q\r\nma n v\r\nma n N0 J10 v\r\nma n v\r\nma n D5 v\r\nma n MD D100 v\r\n"
        b"ma n M- v\r\nma n M+ D7 v\r\nma n MI v\r\nma n MD v\r\nma n\r\nmg n v\r\n"
        b"ma n q\r\nma n q v\r\nmg n v\r\nma n N0 q\r\nma m N0 q\r\nma m N0 J7 q v\r\n"
        b"ma\r\nma " + K251 + b"\r\n",
    ),
    case(
        "ma-return-flags",
        ms(b"n", b"5", b"T100") + b"ma n t c v k O9\r\nma n O8 k\r\nma nx O7 k t c v\r\n"
        b"ma n T50 t\r\nma n t T60\r\nma n t\r\nma w N30 t v c\r\nma w N30 t v c\r\n"
        b"ma x T30 N0 t v\r\nma x t\r\nma y N30 T40 t v\r\n",
    ),
    case(
        "ma-growth-ttl-quirk",
        ms(b"z", b"99")
        + b"ma z T50 t v\r\nma z t\r\nmg z t v\r\n"
        + ms(b"y", b"9", b"T100")
        + b"ma y c t v\r\ngets y\r\nmg y c t\r\n",
    ),
    case(
        "ma-values",
        ms(b"a", b"abc")
        + b"ma a\r\n"
        + ms(b"b", b"")
        + b"ma b\r\n"
        + ms(b"c", b"18446744073709551615")
        + b"ma c v\r\nma c MD D5 v\r\n"
        + ms(b"d", b"  12  ")
        + b"ma d v\r\nmg d v\r\n"
        + ms(b"e", b"10")
        + b"ma e MD v\r\n"
        + b"mg e v s\r\nma e D18446744073709551615 v\r\nma e D18446744073709551616 v\r\n"
        b"ma e D-1\r\nma e Dx\r\nma e J1\r\nma e Jx\r\nma nx N0 J18446744073709551615 v\r\n",
    ),
    case(
        "ma-modes-and-flag-errors",
        ms(b"n", b"5") + b"ma n Mx\r\nma n MDD\r\nma n M\r\nma n z\r\nma n v v\r\n"
        b"ma n Nx\r\nma n Tx\r\nma n Cx\r\nma n O" + b"o" * 33 + b"\r\nmg n v\r\n"
        b"ma n v O" + b"o" * 33 + b" T10\r\nmg n v t\r\nma nx O" + b"o" * 33 + b"\r\n",
    ),
    case(
        "ma-cas",
        Step(ms(b"n", b"5") + b"gets n\r\n", sync=True),
        b"ma n C" + NOCAS + b" v\r\nma n C{cas:0} v c\r\ngets n\r\nma n C{cas:0} v\r\n"
        b"ma n C0 v\r\nma nx C1\r\n"
        + ms(b"e", b"")
        + b"ma e C"
        + NOCAS
        + b"\r\n"
        + ms(b"f", b"x")
        + b"ma f C"
        + NOCAS
        + b"\r\n",
    ),
    # --- interplay with text commands ----------------------------------------------------------
    case(
        "text-and-meta-share-items",
        b"set k 7 0 2\r\nab\r\nmg k v f\r\n"
        + ms(b"k", b"xyz", b"F3 T0")
        + b"get k\r\ngets k\r\nmg k c\r\nappend k 0 0 1\r\n!\r\nmg k v c\r\n"
        b"delete k\r\nmg k v\r\nmg k N30 v\r\nget k\r\nincr k 1\r\n"
        + ms(b"n", b"10")
        + b"incr n 5\r\nma n v\r\ndecr n 100\r\nmg n v s\r\n",
    ),
    case(
        "stats-counters",
        b"mg a\r\nmg a v\r\n" + ms(b"a", b"1") + b"mg a v\r\nmg a T10\r\nmg a u\r\n"
        b"mg b N30\r\nmd a\r\nmd a\r\nma c\r\nma c MD\r\nma c N0\r\nms d 2000000\r\n"
        + b"x" * 2_000_000
        + b"\r\n"
        + ms(b"e", b"x", b"C5")
        + b"me a\r\nme b\r\nstats\r\n",
        fresh=True,
        stat_values=(
            "cmd_get",
            "cmd_set",
            "cmd_touch",
            "cmd_meta",
            "get_hits",
            "get_misses",
            "touch_hits",
            "delete_hits",
            "delete_misses",
            "incr_misses",
            "decr_misses",
            "cas_misses",
            "store_too_large",
            "curr_items",
        ),
    ),
    # --- the fast paths (protocol.text's _serve_meta) and lines just outside them ------------
    case(
        "meta-fast-path-mix",
        ms(b"a", b"abc", b"T30 F5 k c O9")
        + ms(b"b", b"xy", b"q F+7 T-1")
        + ms(b"c", b"")
        + b"mg a s v t f c k O1 q h l\r\nmg b v\r\nmg c v k\r\nmg z k O2\r\nmg z q\r\n"
        b"mg a v v\r\nmg a vx\r\nmg a u h\r\nmg a h\r\nmg a O" + b"o" * 32 + b"\r\n"
        b"mg a O" + b"o" * 31 + b" k\r\nmg a \xff\r\nmg a v k f s t c O1 h l u q 1 2 3 4 5 6\r\n"
        b"mg a v k f s t c O1 h l u q 1 2 3 4 5 6 7\r\n"
        + ms(b"a", b"abc", b"Tx")
        + ms(b"a", b"abc", b"F-1")
        + ms(b"a", b"abc", b"q q")
        + b"ms a 3\r\nab\n\r\n"
        + ms(b"a", b"abcd", b"q k")
        + b"md a q k O1\r\nmd a k O2\r\nmd b\r\nmd b q\r\nmd c q q\r\nmd c v\r\n"
        b"mg a v\r\nmg b v\r\nmg c v\r\nstats\r\n",
        fresh=True,
        stat_values=(
            "cmd_get",
            "cmd_set",
            "get_hits",
            "get_misses",
            "delete_hits",
            "delete_misses",
            "curr_items",
        ),
    ),
    # --- daemon flags -----------------------------------------------------------------------
    case(
        "meta-without-cas",
        ms(b"k", b"a", b"c")
        + b"mg k c v\r\n"
        + ms(b"k", b"b", b"C0")
        + ms(b"k", b"b", b"C1")
        + b"md k C1\r\nma k C1\r\n"
        + ms(b"n", b"1")
        + b"ma n C0 v c\r\nmd k I\r\nmg k c v\r\n"
        b"me n\r\nmd k C0\r\nmg k v\r\n",
        flags=("-C",),
    ),
]


# -- normalisation of meta replies ------------------------------------------------------------

_META_CODES = (b"HD", b"VA", b"EN", b"NF", b"NS", b"EX", b"MN")
_META_CAS = re.compile(rb" c(\d+)(?= |\r\n)")
_ME_CAS = re.compile(rb" cas=(\d+) ")


def _cas_spans(data: bytes) -> list[tuple[int, int, bytes, bool]]:
    """(start, end, digits, is_value_line) of every CAS in replies, in order, skipping data."""
    spans: list[tuple[int, int, bytes, bool]] = []
    pos = 0
    limit = len(data)
    for _ in range(limit + 1):
        if pos >= limit:
            break
        newline = data.find(b"\n", pos)
        if newline < 0:
            break
        line = data[pos : newline + 1]
        match = VALUE_LINE.match(data, pos)
        if match is not None:
            if match.group(4) is not None:
                spans.append((match.start(4), match.end(4), match.group(4), True))
            pos = match.end() + int(match.group(3)) + 2
            continue
        code = line[:2]
        if code in _META_CODES and line[2:3] in (b" ", b"\r"):
            for m in _META_CAS.finditer(line):
                spans.append((pos + m.start(1), pos + m.end(1), m.group(1), False))
            if code == b"VA":
                pos = newline + 1 + int(line.split(b" ")[1].rstrip(b"\r\n")) + 2
                continue
        elif line.startswith(b"ME "):
            for m in _ME_CAS.finditer(line):
                spans.append((pos + m.start(1), pos + m.end(1), m.group(1), False))
        pos = newline + 1
    return spans


def normalised(transcript: Transcript) -> dict[int, bytes]:
    """The harness's normalisation, with meta CAS values numbered alongside VALUE ones."""
    order = [digits for data in transcript.raw.values() for _, _, digits, _ in _cas_spans(data)]
    index = {cas: n for n, cas in enumerate(dict.fromkeys(order))}
    result: dict[int, bytes] = {}
    for conn, data in transcript.raw.items():
        out = bytearray()
        pos = 0
        for start, end, digits, is_value in _cas_spans(data):
            if is_value:
                continue  # left to the harness, numbered from the same order
            out += data[pos:start] + b"<cas:%d>" % index[digits]
            pos = end
        out += data[pos:]
        result[conn] = normalise(bytes(out), order) + transcript.endings[conn]
    return result


def test_normalisation_numbers_meta_and_value_cas_together() -> None:
    transcript = Transcript(
        raw={
            0: b"VALUE k 0 1 77\r\nc\r\nEND\r\nVA 2 c77 f1\r\nc5\r\nHD c9\r\n"
            b"ME k exp=-1 la=0 cas=9 fetch=no cls=1 size=60\r\n"
        },
        endings={0: b""},
    )
    assert normalised(transcript)[0] == (
        b"VALUE k 0 1 <cas:0>\r\nc\r\nEND\r\nVA 2 c<cas:0> f1\r\nc5\r\nHD c<cas:1>\r\n"
        b"ME k exp=-1 la=0 cas=<cas:1> fetch=no cls=1 size=60\r\n"
    )


def _params() -> list[object]:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    params: list[object] = []
    for c in CASES:
        marks = [pytest.mark.xfail(reason=c.differ, strict=False)] if c.differ else []
        params.append(pytest.param(c, id=c.id, marks=marks))
    return params


# Cases whose ``la=`` follows a write too large to be sure of the same second: the 700 KB
# value takes pure Python long enough on a slow machine that the clock may tick before the
# ``me`` (seen once in CI: la=1 against memcached's la=0). Their ``la=`` must be a number.
LA_MAY_TICK = frozenset({"mg-large-value"})
_LA = re.compile(rb" la=\d+ ")


def _untimed(conns: dict[int, bytes]) -> dict[int, bytes]:
    return {conn: _LA.sub(b" la=<s> ", data) for conn, data in conns.items()}


@pytest.mark.parametrize("c", _params())
def test_meta_same_bytes_as_memcached(
    c: Case, differential: Callable[[Case], tuple[Outcome, Outcome]]
) -> None:
    reference, candidate = differential(c)
    problems: list[str] = []
    theirs_out, ours_out = normalised(reference.transcript), normalised(candidate.transcript)
    if c.id in LA_MAY_TICK:
        theirs_out, ours_out = _untimed(theirs_out), _untimed(ours_out)
    diff = differences(theirs_out, ours_out)
    if diff:
        problems.append(diff)
    theirs, ours = reference.transcript.stats(), candidate.transcript.stats()
    for name in c.stat_values:
        key = name.encode()
        if theirs.get(key) != ours.get(key):
            problems.append(
                f"STAT {name}: memcached {theirs.get(key)!r}, memcachepy {ours.get(key)!r}"
            )
    if problems:
        flags = " ".join(c.flags) or "(no flags)"
        pytest.fail(f"flags: {flags}\n" + "\n".join(problems), pytrace=False)
