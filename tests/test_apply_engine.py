"""The applier (fleet_sdk.testing.apply) on tiny programs: commands run as pulumi-command runs them,
in dependency order, and a second apply compares with the state the first left."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pulumi_hcloud as hcloud
import pytest
from pulumi_command import local

from fleet_sdk.errors import CommandError
from fleet_sdk.testing import SECRET, ApplyState, apply_program
from fleet_sdk.testing.localcommand import change, keep_ignored, parse_duration

COMMAND = "command:local:Command"
SERVER = "hcloud:index/server:Server"


def append(log: Path, word: str, delay: float = 0.0) -> str:
    """A command that waits `delay` seconds, then appends `word` to `log` and prints it."""
    return f"sleep {delay}; echo {word} >> {shlex.quote(str(log))}; echo {word}"


def words(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def opts(**kwargs: Any) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(**kwargs)


def test_a_depends_on_chain_runs_in_order_while_the_rest_runs_alongside(tmp_path: Path) -> None:
    log = tmp_path / "log"

    def program() -> None:
        # first a slow root and its chain, then what waits for the chain and for a slow sibling:
        # every registration is sent at once, each command waits for what it depends on
        first = local.Command("first", create=append(log, "first", 0.4))
        second = local.Command("second", create=append(log, "second"), opts=opts(depends_on=[first]))
        sibling = local.Command("sibling", create=append(log, "sibling", 0.6))
        local.Command("third", create=append(log, "third"), opts=opts(depends_on=[second, sibling]))
        local.Command("free", create=append(log, "free"))

    result = apply_program(program, ApplyState())
    order = words(log)
    assert order.index("first") < order.index("second") < order.index("third")
    assert order.index("sibling") < order.index("third")
    assert order.index("free") < order.index("second")  # nothing held it back
    runs = {r.name: r for r in result.runs}
    assert runs["first"].duration >= 0.4 and runs["sibling"].duration >= 0.6
    # the chain did not start before what it waits for ended (finish order is the runs' order)
    finished = [r.name for r in result.runs]
    assert finished.index("second") < finished.index("third") and finished.index("sibling") < finished.index("third")
    assert result.ran() == ["first", "free", "second", "sibling", "third"]


def test_a_command_waits_for_the_output_it_uses_and_for_a_components_children(tmp_path: Path) -> None:
    log = tmp_path / "log"

    def program() -> None:
        source = local.Command("source", create=append(log, "source", 0.3))
        local.Command("user", create=source.stdout.apply(lambda out: f"echo {out} >> {log}; echo got-{out}"))
        group = pulumi.ComponentResource("test:index:Group", "group")
        local.Command("child", create=append(log, "child", 0.3), opts=opts(parent=group))
        group.register_outputs({})
        local.Command("after-group", create=append(log, "after-group"), opts=opts(depends_on=[group]))

    state = ApplyState()
    result = apply_program(program, state)
    assert words(log).index("child") < words(log).index("after-group")
    assert result.run("user").stdout == "got-source"  # one trailing newline dropped, as the provider does
    assert result.graph.one(COMMAND, "user").inputs["create"].startswith("echo source >> ")
    assert state.outputs("user")["stdout"] == "got-source"


def test_a_command_registered_before_what_it_waits_for_still_runs_after_it(tmp_path: Path) -> None:
    log = tmp_path / "log"

    def program() -> None:
        # the consumer is constructed first; its create text comes from a command made after it
        text, resolve = pulumi.deferred_output()
        consumer = local.Command("consumer", create=text)
        late = local.Command("late", create=append(log, "late", 0.3))
        resolve(late.stdout.apply(lambda out: append(log, f"consumer-after-{out}")))
        local.Command("last", create=append(log, "last"), opts=opts(depends_on=[consumer]))

    apply_program(program, ApplyState())
    assert words(log) == ["late", "consumer-after-late", "last"]


def test_a_failing_command_fails_the_apply_and_its_dependents_never_run(tmp_path: Path) -> None:
    log = tmp_path / "log"

    def program(script: str) -> Callable[[], None]:
        def body() -> None:
            bad = local.Command("bad", create=script)
            local.Command("after", create=append(log, "after"), opts=opts(depends_on=[bad]))

        return body

    state = ApplyState()
    with pytest.raises(CommandError) as info:
        apply_program(program("echo half-done; echo 'no disk here' >&2; exit 3"), state, stack="dev", project="demo")
    error = info.value
    assert (error.returncode, error.stderr, error.argv[:2]) == (3, "no disk here", ["/bin/sh", "-c"])
    assert "resource urn:pulumi:dev::demo::command:local:Command::bad: create failed (exit status 3)" in str(error)
    assert [(r.name, r.exit_code, r.stdout) for r in state.history] == [("bad", 3, "half-done")]
    assert words(log) == []  # its dependent never ran
    assert list(state) == []  # a failed create is not recorded: the next apply runs it again
    assert apply_program(program("echo fixed"), state).ran() == ["after", "bad"]
    # a failed update keeps the entry as it was
    with pytest.raises(CommandError):
        apply_program(program("exit 1"), state)
    assert state.outputs("bad")["stdout"] == "fixed" and state.outputs("bad")["create"] == "echo fixed"


def program_of(log: Path, **settings: Any) -> Callable[[], None]:
    """Two independent commands, `a` and `b`; `settings` change b's inputs and options."""

    def program() -> None:
        local.Command("a", create=append(log, "a"), triggers=["a1"])
        local.Command(
            "b",
            create=settings.get("create", append(log, "b")),
            update=settings.get("update"),
            environment={"WHERE": settings.get("where", "/one")},
            triggers=[settings.get("trigger", "b1")],
            opts=opts(ignore_changes=settings.get("ignore", [])),
        )

    return program


def test_nothing_changed_runs_nothing_and_answers_the_previous_outputs(tmp_path: Path) -> None:
    log = tmp_path / "log"

    def program() -> None:
        nonce = local.Command("nonce", create="od -An -N8 -tx8 /dev/urandom | tr -d ' '")
        local.Command("echo", create=nonce.stdout.apply(lambda n: f"echo {n}"))

    state = ApplyState()
    first = apply_program(program, state)
    again = apply_program(program, state)
    assert again.runs == [] and again.ran() == []
    assert again.graph.one(COMMAND, "echo").state["stdout"] == first.run("nonce").stdout
    assert state.entry("nonce").id == first.graph.one(COMMAND, "nonce").id
    assert apply_program(program_of(log), state).ran() == ["a", "b"]  # a new program: new commands


def test_a_changed_trigger_replaces_only_its_command(tmp_path: Path) -> None:
    log = tmp_path / "log"
    state = ApplyState()
    apply_program(program_of(log), state)
    before = state.entry("b").id
    result = apply_program(program_of(log, trigger="b2"), state)
    assert result.ran() == ["b"] and result.run("b").operation == "replace"
    assert state.entry("b").id != before  # a replacement is a new resource
    assert sorted(words(log)) == ["a", "b", "b"] and words(log)[-1] == "b"


def test_other_changes_update_and_ignored_inputs_are_not_compared(tmp_path: Path) -> None:
    log = tmp_path / "log"
    state = ApplyState()
    show = 'echo "where=$WHERE previous=${PULUMI_COMMAND_STDOUT:-none}"'
    apply_program(program_of(log, create=show, ignore=["environment"]), state)
    assert state.outputs("b")["stdout"] == "where=/one previous=none"
    # the environment changed, but it is ignored: nothing runs, and the state keeps the old value
    assert apply_program(program_of(log, create=show, where="/two", ignore=["environment"]), state).runs == []
    assert state.outputs("b")["environment"] == {"WHERE": "/one"}
    # another input changed: an update (create again, as there is no update text), with the old
    # environment (ignored) and the previous stdout in the environment (addPreviousOutputInEnv)
    again = apply_program(program_of(log, create=show + " ", where="/two", ignore=["environment"]), state)
    assert again.ran() == ["b"] and again.run("b").operation == "update"
    assert again.run("b").stdout == "where=/one previous=where=/one previous=none"
    # not ignored: the environment change alone updates, with `update` when there is one
    result = apply_program(program_of(log, create=show + " ", update="echo updated $WHERE", where="/two"), state)
    assert (result.ran(), result.run("b").stdout) == (["b"], "updated /two")
    assert state.entry("a").id == apply_program(program_of(log, where="/three"), state).graph.one(COMMAND, "a").id


def test_a_hung_command_fails_at_its_deadline_naming_the_resource(tmp_path: Path) -> None:
    def program() -> None:
        local.Command("hangs", create="sleep 30 & wait")  # a child in its process group: killed too

    started = time.monotonic()
    state = ApplyState()
    with pytest.raises(CommandError) as info:
        apply_program(program, state, timeout=0.5)
    assert time.monotonic() - started < 10
    assert info.value.returncode is None and "timed out" in str(info.value)
    assert "resource urn:pulumi:test::fleet::command:local:Command::hangs: create failed (killed after 0.5 s)" in str(
        info.value
    )
    assert [(r.name, r.exit_code) for r in state.history] == [("hangs", None)]

    def slow() -> None:  # its own custom_timeouts win over the applier's
        local.Command("slow", create="sleep 30", opts=opts(custom_timeouts=pulumi.CustomTimeouts(create="1s")))

    with pytest.raises(CommandError, match="killed after 1 s"):
        apply_program(slow, ApplyState(), timeout=600)


def test_cloud_resources_are_mocked_with_the_outputs_given_and_keep_their_id(tmp_path: Path) -> None:
    log = tmp_path / "log"

    def program() -> None:
        server = hcloud.Server("web", server_type="cx22", image="debian-12", location="nbg1")
        create = server.ipv4_address.apply(lambda ip: append(log, f"install-{ip}"))
        local.Command("install", create=create, triggers=[server.id])

    def cloud(type_: str, name: str, inputs: Any) -> dict[str, str] | None:
        return {"ipv4Address": "127.0.0.1"} if type_ == SERVER else None

    state = ApplyState()
    first = apply_program(program, state, cloud_outputs=cloud)
    assert words(log) == ["install-127.0.0.1"] and first.graph.one(SERVER, "web").state["ipv4Address"] == "127.0.0.1"
    again = apply_program(program, state, cloud_outputs=cloud)
    assert again.runs == []  # the server kept its id, so the install is not triggered
    assert again.graph.one(SERVER, "web").id == first.graph.one(SERVER, "web").id


def test_what_the_program_no_longer_declares_is_deleted(tmp_path: Path) -> None:
    log = tmp_path / "log"

    def program(with_b: bool) -> Callable[[], None]:
        def body() -> None:
            local.Command("a", create=append(log, "a"))
            if with_b:
                local.Command("b", create=append(log, "b"), delete='echo "bye $PULUMI_COMMAND_STDOUT" >> ' + str(log))

        return body

    state = ApplyState()
    apply_program(program(True), state)
    result = apply_program(program(False), state)
    assert [(r.name, r.operation) for r in result.runs] == [("b", "delete")]
    assert words(log)[-2:] == ["bye", "b"] and "b" not in [state.resources[u].name for u in state]


def test_dir_stdin_environment_and_secrets(tmp_path: Path) -> None:
    def program() -> None:
        local.Command(
            "reads",
            create='cat; echo " in $(pwd) for $WHO and $FROM_SHELL"',
            dir=str(tmp_path),
            stdin="hello",
            environment={"WHO": "web1"},
        )
        local.Command("secret", create=pulumi.Output.secret("echo s3cret"))

    result = apply_program(program, ApplyState(), environ={"PATH": "/usr/bin:/bin", "FROM_SHELL": "yes"})
    assert result.run("reads").stdout == f"hello in {tmp_path} for web1 and yes"
    assert result.run("reads").argv == ("/bin/sh", "-c", 'cat; echo " in $(pwd) for $WHO and $FROM_SHELL"')
    assert result.run("secret").stdout == "s3cret"  # the command saw the plain text
    assert result.graph.one(COMMAND, "secret").state["stdout"] == SECRET  # and its output stays secret

    def leaky() -> None:
        local.Command("leaky", create=pulumi.Output.secret("echo pa55word >&2; exit 1"))

    with pytest.raises(CommandError) as info:  # a secret command text is not shown
        apply_program(leaky, ApplyState())
    assert info.value.argv == ["/bin/sh", "-c", SECRET] and "pa55word" in info.value.stderr


def test_the_diff_rules() -> None:
    assert change(None, {"create": "x"}) == "create"
    assert change({"create": "x"}, {"create": "x"}) == "same"
    assert change({"create": "x", "triggers": [1]}, {"create": "x", "triggers": [2]}) == "replace"
    assert change({"create": "x"}, {"create": "y"}) == "update"
    assert change({"create": "x"}, {"create": "y"}, ["create"]) == "replace"
    assert keep_ignored({"environment": {"A": "1"}}, {"environment": {"A": "2"}}, ["environment"]) == {
        "environment": {"A": "1"}
    }
    assert keep_ignored({}, {"environment": {"A": "2"}}, ["environment"]) == {}
    with pytest.raises(ValueError, match="top-level inputs only"):
        keep_ignored({}, {}, ["environment.A"])
    assert (parse_duration("1h30m"), parse_duration("45s"), parse_duration("500ms"), parse_duration("soon")) == (
        5400.0, 45.0, 0.5, None,
    )  # fmt: skip
