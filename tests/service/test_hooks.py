"""RequestHooks: layers wrap exactly the handlers they want, and only while they want them."""

from __future__ import annotations

from typing import Any

from memcachepy.ops.hooks import Handler, RequestHooks


class A:
    pass


class B:
    pass


def handler_for(name: str) -> Handler:
    def handler(event: Any, out: list[Any]) -> int:
        out.append(name)
        return 0

    return handler


def test_layers_wrap_in_order_and_unwrap_to_the_same_objects() -> None:
    table: dict[type, Handler] = {A: handler_for("a"), B: handler_for("b")}
    original = dict(table)
    hooks = RequestHooks(table)
    wanted = {"inner": False, "outer": False}

    def layer(name: str) -> Any:
        def run(event: Any, out: list[Any], call: Handler) -> int:
            out.append(f"{name}>")
            outcome = call(event, out)
            out.append(f"<{name}")
            return outcome

        return run

    hooks.add("inner", layer("inner"), lambda t: wanted["inner"] and t is A)
    hooks.add("outer", layer("outer"), lambda t: wanted["outer"])
    hooks.refresh()
    assert table == original and not hooks.wrapped(A)

    wanted.update(inner=True, outer=True)
    hooks.refresh()
    out: list[Any] = []
    table[A](A(), out)
    assert out == ["outer>", "inner>", "a", "<inner", "<outer"]
    out.clear()
    table[B](B(), out)
    assert out == ["outer>", "b", "<outer"]
    wrapped_a = table[A]
    hooks.refresh()  # nothing changed: the same wrapper stays
    assert table[A] is wrapped_a

    wanted.update(inner=False, outer=False)
    hooks.refresh()
    assert all(table[t] is original[t] for t in (A, B))
