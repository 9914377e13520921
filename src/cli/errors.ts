// The CLI's expected failures.

/** A clear, expected failure: the CLI prints its message on one line, without a stack trace. */
export class UsageError extends Error { override name = 'UsageError'; }
