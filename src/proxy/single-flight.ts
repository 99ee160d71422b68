/** One run of `work` per key at a time in this process: callers that arrive meanwhile share its result. */
export class SingleFlight<T> {
  private readonly running = new Map<string, Promise<T>>();

  run(key: string, work: () => Promise<T>): Promise<T> {
    const current = this.running.get(key);
    if (current) return current;
    const started = work().finally(() => this.running.delete(key));
    this.running.set(key, started);
    return started;
  }

  get(key: string): Promise<T> | undefined {
    return this.running.get(key);
  }
}
