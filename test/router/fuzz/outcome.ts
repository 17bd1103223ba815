/** What one parser made of one input: the first message's verdict and, if accepted, its framing and body. */
export type Verdict = 'accept' | 'reject' | 'incomplete' | 'connect' | 'upgrade';
export type Framing = 'none' | 'length' | 'chunked';

export interface Outcome {
  verdict: Verdict;
  /** set when verdict is accept/upgrade */
  framing: Framing | null;
  /** Content-Length for framing 'length' */
  length: number;
  /** decoded body of the first message (accept only) */
  body: Buffer | null;
  /** parser-specific detail: llhttp error code, our ParseError name, … */
  detail: string;
}

export function outcome(verdict: Verdict, detail: string, framing: Framing | null = null, length = -1, body: Buffer | null = null): Outcome {
  // A zero Content-Length and no body at all frame the same message.
  if (framing === 'length' && length === 0) {
    framing = 'none';
    length = -1;
  }
  return { verdict, framing, length, body, detail };
}

export function describe(o: Outcome): string {
  let s = o.verdict;
  if (o.framing) s += ` ${o.framing}${o.framing === 'length' ? `(${o.length})` : ''}`;
  if (o.body && o.body.length > 0) s += ` body=${JSON.stringify(o.body.toString('latin1').slice(0, 60))}${o.body.length > 60 ? `…(${o.body.length})` : ''}`;
  if (o.detail) s += ` [${o.detail}]`;
  return s;
}

/** Same verdict, and when accepted the same framing, length and decoded body. */
export function sameOutcome(a: Outcome, b: Outcome): boolean {
  if (a.verdict !== b.verdict) return false;
  if (a.verdict !== 'accept' && a.verdict !== 'upgrade') return true;
  if (a.framing !== b.framing || a.length !== b.length) return false;
  if (a.verdict === 'upgrade') return true;
  return (a.body ?? Buffer.alloc(0)).equals(b.body ?? Buffer.alloc(0));
}
