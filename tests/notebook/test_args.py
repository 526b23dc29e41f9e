"""`%%dpsql` / `%pdbg` argument parsing: pure, no kernel, no session."""

import pytest

from pdbg.notebook.args import MagicUsageError, infer_free_param, parse_dpsql, parse_pdbg


def test_defaults():
    a = parse_dpsql("")
    assert (a.epsilon, a.accuracy, a.preview, a.template, a.params, a.output) == (None, None, False, None, {}, None)


def test_all_options():
    a = parse_dpsql("--epsilon 0.25 --preview --template errors_by_service --param start='2026-11-20 13:00:00' "
                    "--param end=2026-11-20T16:00 -o errs --chart")
    assert a.epsilon == 0.25 and a.preview and a.chart
    assert a.template == "errors_by_service"
    assert a.params == {"start": "2026-11-20 13:00:00", "end": "2026-11-20T16:00"}
    assert a.output == "errs"


def test_accuracy_and_short_flags():
    a = parse_dpsql("-a 20 -p -t users_affected")
    assert a.accuracy == 20 and a.preview and a.template == "users_affected"


@pytest.mark.parametrize("line", [
    "--epsilon 0.1 --accuracy 5",      # mutually exclusive
    "--epsilon -1",
    "--epsilon abc",
    "--accuracy 0",
    "--param novalue",
    "--param 1x=2",
    "--param a=1 --param a=2",
    "-o not-a-name",
    "--bogus",
    "--param 'unclosed",
])
def test_bad_lines_raise_usage_error_not_exit(line):
    with pytest.raises(MagicUsageError) as exc:
        parse_dpsql(line)
    assert exc.value.hint


def test_help_is_a_usage_error_with_full_help():
    with pytest.raises(MagicUsageError) as exc:
        parse_dpsql("--help")
    assert "--epsilon" in exc.value.hint and "--template" in exc.value.hint


def test_param_value_may_contain_equals():
    assert parse_dpsql("--param q=a=b").params == {"q": "a=b"}


def test_infer_free_param():
    assert infer_free_param("500") == 500 and isinstance(infer_free_param("500"), int)
    assert infer_free_param("0.5") == 0.5
    assert infer_free_param("checkout") == "checkout"
    assert infer_free_param("2026-11-20 13:00:00") == "2026-11-20 13:00:00"


def test_pdbg_connect():
    c = parse_pdbg("connect /tmp/ws --user alice --case INC-7").connect
    assert (c.target, c.user, c.case, c.token_file) == ("/tmp/ws", "alice", "INC-7", None)
    assert parse_pdbg("connect http://h:8080 -u a -c C --token-file /t").connect.token_file == "/t"


@pytest.mark.parametrize("line", ["connect /ws -u a -c C --token s3cret", "connect /ws -u a -c C --token=s3cret"])
def test_pdbg_connect_refuses_a_token_in_the_cell(line):
    with pytest.raises(MagicUsageError) as err:
        parse_pdbg(line)
    assert "s3cret" not in str(err.value) and "PDBG_TOKEN" in err.value.hint


@pytest.mark.parametrize("line", ["connect /ws --user a", "connect --user a --case c", "frobnicate",
                                  "budget extra", "use 1abc", "use"])
def test_pdbg_bad(line):
    with pytest.raises(MagicUsageError):
        parse_pdbg(line)


def test_pdbg_verbs():
    assert parse_pdbg("").verb == "help"
    assert parse_pdbg("budget").verb == "budget"
    assert parse_pdbg("use s").variable == "s"
