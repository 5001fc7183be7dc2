"""The `helpline` command line: train, predict, chat, eval, and content checks."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from typing import List, TextIO

from helpline.paths import ProjectPaths


def _quiet_libraries() -> None:
    from helpline.logs import quiet_libraries

    quiet_libraries()


def cmd_content_check(args: argparse.Namespace) -> int:
    from helpline import content

    try:
        entries = content.load(args.paths.content)
    except content.ContentInvalid as invalid:
        print(invalid, file=sys.stderr)
        return 1
    print(f"{len(entries)} entries OK")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from helpline import content, training

    _quiet_libraries()
    try:
        training.train(args.paths, force=args.force)
    except content.ContentInvalid as invalid:
        print(f"Content has errors, nothing trained:\n{invalid}", file=sys.stderr)
        return 1
    return 0


def _load_assistant(paths: ProjectPaths):
    from helpline import training
    from helpline.assistant import Assistant

    _quiet_libraries()
    with contextlib.redirect_stdout(sys.stderr):  # standard output carries only the command's own output
        training.train(paths, progress=print)
        return Assistant.load(paths)


def cmd_predict(args: argparse.Namespace) -> int:
    assistant = _load_assistant(args.paths)
    source: TextIO = open(args.file, encoding="utf-8") if args.file else sys.stdin
    status = 0
    with source:
        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                text, language = item["text"], item.get("language")
                if not isinstance(text, str) or (language is not None and language not in ("zh", "vi", "en")):
                    raise ValueError("text must be a string, language zh, vi or en")
            except (ValueError, KeyError, TypeError) as error:
                print(f"line {number}: not a JSON object with a text: {error}", file=sys.stderr)
                status = 1
                continue
            print(asyncio.run(assistant.understand(text, language)).to_json(), flush=True)
    return status


def cmd_chat(args: argparse.Namespace) -> int:
    assistant = _load_assistant(args.paths)
    print("Chat with the helpline assistant in Chinese or Vietnamese (Ctrl-D to stop).")
    language: str | None = None

    async def turn(text: str) -> None:
        nonlocal language
        result = await assistant.respond("terminal", text, language)
        language = result.language
        replies = result.replies
        if result.urgent:
            replies = [assistant.render("utter_urgent", language, case_ref="(terminal)",
                                        emergency_numbers=assistant.render("utter_emergency_numbers", language))]
        for reply in replies:
            print(f"bot> {reply}")
        print(f"     [{result.language} {result.intent} {result.confidence:.2f} {result.action}"
              f"{' urgent:' + str(result.urgent_category) if result.urgent else ''}]")

    while True:
        try:
            text = input("you> ")
        except EOFError:
            print()
            return 0
        if text.strip():
            asyncio.run(turn(text))


def cmd_eval(args: argparse.Namespace) -> int:
    from helpline import evaluation, training

    _quiet_libraries()
    training.train(args.paths, progress=lambda line: print(line, file=sys.stderr))
    print(evaluation.run(args.paths))
    print(f"\nWritten to {args.paths.reports / 'eval.md'}", file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import uvicorn

    from helpline import logs, training
    from helpline.channels import enabled_channels
    from helpline.gateway import create_app
    from helpline.settings import Settings

    _quiet_libraries()
    logs.configure()
    settings = Settings()
    with contextlib.redirect_stdout(sys.stderr):
        training.train(args.paths, progress=print)
    on = enabled_channels(settings)
    print("Channels: " + ", ".join(f"{name} {'on' if enabled else 'off'}" for name, enabled in on.items()))
    print(f"Helpline on http://{settings.host}:{settings.port} (database {settings.database_url.split(':', 1)[0]})")
    uvicorn.run(create_app(settings, paths=args.paths), host=settings.host, port=settings.port, log_level="warning", ws="none")
    return 0


def cmd_operator_add(args: argparse.Namespace) -> int:
    import getpass

    from helpline import auth, store
    from helpline.settings import Settings

    settings = Settings()
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("The passwords differ.", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    store.migrate(settings.database_url)
    engine = store.make_engine(settings.database_url)
    try:
        auth.create_operator(store.session_factory(engine), args.username, password, args.role)
    except auth.AuthError as error:
        print(f"Not created: {error}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"Operator {args.username} ({args.role}) created.")
    return 0


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="helpline", description="A confidential helpline for factory workers.")
    commands = main.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="build the training data from content/ and train the model")
    train.add_argument("--force", action="store_true", help="train even when nothing changed")
    train.set_defaults(func=cmd_train)
    predict = commands.add_parser("predict", help='classify JSON lines {"text": ..., "language": optional}')
    predict.add_argument("--file", help="read this file instead of standard input")
    predict.set_defaults(func=cmd_predict)
    commands.add_parser("chat", help="talk to the assistant in the terminal").set_defaults(func=cmd_chat)
    commands.add_parser("run", help="start the helpline service (HELPLINE_* settings)").set_defaults(func=cmd_run)
    commands.add_parser("eval", help="write the evaluation report to reports/").set_defaults(func=cmd_eval)
    operator = commands.add_parser("operator", help="console accounts")
    operator_commands = operator.add_subparsers(dest="operator_command", required=True)
    add = operator_commands.add_parser("add", help="create an account (password on standard input)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=["operator", "supervisor", "editor", "admin"])
    add.set_defaults(func=cmd_operator_add)
    content = commands.add_parser("content", help="content tools")
    content_commands = content.add_subparsers(dest="content_command", required=True)
    content_commands.add_parser("check", help="check content/ and list every error").set_defaults(func=cmd_content_check)
    return main


def main(argv: List[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.paths = ProjectPaths()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
