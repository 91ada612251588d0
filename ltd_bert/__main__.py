from ltd_bert.cli import cli

if __name__ == "__main__":
    cli(prog_name="ltd")
