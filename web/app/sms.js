// SMS encoding and segment counting, the same rules as the server
// (avisa-core/src/sms.rs), so the counter is right while the person types.

const GSM_BASIC = '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?' +
  '¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
const GSM_EXTENSION = '^{}\\[~]|€\f';

function septets(ch) {
  if (GSM_BASIC.includes(ch)) return 1;
  if (GSM_EXTENSION.includes(ch)) return 2;
  return null;
}

export function analyze(text) {
  const chars = Array.from(text);
  let units = chars.map(septets);
  let encoding = 'GSM-7';
  let single = 160;
  let multi = 153;
  if (units.some((u) => u === null)) {
    encoding = 'UCS-2';
    units = chars.map((c) => (c.codePointAt(0) > 0xffff ? 2 : 1));
    single = 70;
    multi = 67;
  }
  const total = units.reduce((a, b) => a + b, 0);
  let segments = 0;
  if (total > 0 && total <= single) segments = 1;
  else if (total > single) {
    segments = 1;
    let used = 0;
    for (const u of units) {
      if (used + u > multi) {
        segments += 1;
        used = 0;
      }
      used += u;
    }
  }
  return { encoding, characters: chars.length, segments };
}
