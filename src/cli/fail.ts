/** CLI failure: one line on stderr, a non-zero exit, never a stack trace. */
export function fail(message: string, exitCode = 1): never {
  process.stderr.write(`rollcall: ${message}\n`);
  process.exit(exitCode);
}
