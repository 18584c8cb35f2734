// The one way this project bounds a wait on something outside the process (a broker, a probe).

/** Settles like `p`, or rejects with Error(message) after `ms`; the timer never outlives the race. */
export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(message)), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}
