/**
 * Per-key serial execution: tasks with the same key run one after another, in the order they were
 * added; tasks of different keys run independently. Discord events of one channel go through here,
 * so a message whose attachment is still uploading is reported before the next message of that
 * channel, and an edit or reaction never overtakes the message it is about; so do the presence
 * changes of one ghost (bridge/presence.ts), so an older one never lands after a newer one.
 * A failing task is handed to `onError` and does not stop the tasks after it.
 */
export class KeyedSerial {
  private readonly tails = new Map<string, Promise<void>>();

  run(key: string, task: () => Promise<void>, onError: (err: unknown) => void): Promise<void> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(task).catch(onError);
    this.tails.set(key, next);
    void next.finally(() => { if (this.tails.get(key) === next) this.tails.delete(key); });
    return next;
  }

  /** Resolves when everything queued so far has run. */
  async idle(): Promise<void> {
    while (this.tails.size) await Promise.all([...this.tails.values()]);
  }
}
