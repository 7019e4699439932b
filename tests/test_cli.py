"""The command line: every command explains itself, and user errors are one clean line."""

from typer.main import get_command
from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()


def _commands(group, prefix=()):
    for name, cmd in getattr(group, "commands", {}).items():
        yield prefix + (name,), cmd
        yield from _commands(cmd, prefix + (name,))


def test_every_command_and_option_has_help_text():
    root = get_command(app)
    found = list(_commands(root))
    assert len(found) >= 12
    for path, cmd in found:
        assert (cmd.help or "").strip(), f"`churnwatch {' '.join(path)}` has no help text"
        for param in cmd.params:
            if param.param_type_name == "option" and param.name != "help":
                assert (param.help or "").strip(), f"option {param.opts} of {' '.join(path)} has no help"


def test_top_level_help_lists_the_stage_groups():
    out = runner.invoke(app, ["--help"]).output
    for name in ["init", "demo", "models", "transcribe", "ingest", "rules", "detect", "crm", "risk",
                 "reminders", "coach"]:
        assert name in out, name


def test_init_creates_a_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = runner.invoke(app, ["init", "--db", url])
    assert result.exit_code == 0, result.output
    assert "Database ready" in result.output
    assert (tmp_path / "x.db").exists()


def test_bad_database_url_is_one_line_not_a_traceback():
    result = runner.invoke(app, ["init", "--db", "nosuchdb://x"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "Cannot use database URL" in result.output


def test_granting_money_names_an_unknown_email_and_refuses_a_non_coach(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert runner.invoke(app, ["users", "add", "boss@example.com", "--role", "manager", "--db", url]).exit_code == 0
    for verb in ("grant", "revoke"):
        result = runner.invoke(app, ["users", verb, "nobody@example.com", "money", "--db", url])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert "No user nobody@example.com" in result.output and "users add nobody@example.com" in result.output
    result = runner.invoke(app, ["users", "grant", "boss@example.com", "money", "--db", url])
    assert result.exit_code == 1 and "the grant is for coaches" in result.output
    result = runner.invoke(app, ["users", "grant", "boss@example.com", "salaries", "--db", url])
    assert result.exit_code == 2 and "money" in result.output  # the valid choice is named
