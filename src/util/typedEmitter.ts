/**
 * A minimal typed event emitter: event names map to payload types, so a listener for a
 * misspelled event or with the wrong payload does not compile. A throwing listener is isolated:
 * it is reported through `onListenerError` and never breaks the emitter.
 */
export class TypedEmitter<Events extends { [K in keyof Events]: unknown }> {
  private listeners: { [K in keyof Events]?: Array<(payload: Events[K]) => void> } = {};
  onListenerError: (event: string, err: unknown) => void = () => undefined;

  on<K extends keyof Events>(event: K, fn: (payload: Events[K]) => void): () => void {
    (this.listeners[event] ??= []).push(fn);
    return () => this.off(event, fn);
  }

  off<K extends keyof Events>(event: K, fn: (payload: Events[K]) => void): void {
    const list = this.listeners[event];
    if (!list) return;
    const i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
  }

  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const list = this.listeners[event];
    if (!list) return;
    for (const fn of list.slice()) {
      try {
        fn(payload);
      } catch (err) {
        this.onListenerError(String(event), err);
      }
    }
  }
}
