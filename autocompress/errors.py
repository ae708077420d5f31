"""User-facing errors: one clear line, exit code 2 at the command line."""


class UserInputError(Exception):
    """Bad input from the user (a file, a path, a CLI value).

    The message is a single line naming the file and what is wrong; the CLI prints it
    and exits with status 2.
    """


class MissingSignaturesError(UserInputError):
    """A candidate contains operations that the hardware profile has no entry for."""
