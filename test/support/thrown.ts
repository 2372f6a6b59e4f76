/** The message `fn` throws; throws itself when `fn` does not, so a test comparing messages fails. */
export function thrown(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error, none was thrown');
}
