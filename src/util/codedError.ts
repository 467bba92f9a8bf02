/**
 * An error that carries a machine-readable code plus context. Callers switch on `code`
 * (exhaustively) to decide how to react, e.g. how much to penalise a peer.
 */
export class CodedError<C extends string = string> extends Error {
  readonly code: C;
  readonly context: Record<string, unknown>;
  constructor(code: C, message: string, context: Record<string, unknown> = {}) {
    super(message);
    this.code = code;
    this.context = context;
    this.name = new.target.name;
  }
}
