/** Waiting in tests for something another part does on its own time, without guessing a sleep. */

/** Polls `predicate` every 5 ms for up to 2 s; throws naming `what` if it never held. */
export async function until(predicate: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
