"""User-facing errors: one paragraph that names the problem and the fix."""


class EgmError(Exception):
  """A problem with the user's input (config, data, flags) rather than a bug.

  The entry points print the message alone, without a traceback, and exit
  with status 2.
  """


def first_few(items, limit: int) -> str:
  """The first `limit` of `items` joined by '; ', with '; ...' when some were left out."""
  return '; '.join(items[:limit]) + ('; ...' if len(items) > limit else '')
