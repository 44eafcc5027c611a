// The proof of work a registration solves when codes are asked faster than
// usual (the server's GET /api/v1/devices/challenge, ALTCHA's format): the
// number whose SHA-256 after the salt is the challenge. A few hundred
// milliseconds on a cheap phone; costly for a flood of bots. Loaded only
// when the server asks for it.

import { addStrings } from './i18n.js';

addStrings({
  es: { pow_working: 'Un momento: tu teléfono está comprobando que no es un robot…' },
  en: { pow_working: 'One moment: your phone is showing it is not a robot…' },
});

const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');

/// The solution to send as `challenge`, or null if none was found.
export async function solve(c) {
  const encoder = new TextEncoder();
  const batch = 256;
  for (let start = 0; start <= c.maxnumber; start += batch) {
    const numbers = [];
    for (let n = start; n < start + batch && n <= c.maxnumber; n += 1) numbers.push(n);
    const digests = await Promise.all(numbers.map((n) => crypto.subtle.digest('SHA-256', encoder.encode(`${c.salt}${n}`))));
    const at = digests.findIndex((d) => hex(d) === c.challenge);
    if (at >= 0) {
      return { algorithm: c.algorithm, challenge: c.challenge, number: numbers[at], salt: c.salt, signature: c.signature };
    }
  }
  return null;
}
