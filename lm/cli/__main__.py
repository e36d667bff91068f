from lm.cli import main

main(prog_name="lm")
