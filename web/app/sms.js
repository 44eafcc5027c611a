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

// Whether a character joins the one before it in one grapheme (the same
// rule as avisa-core/src/sms.rs): a ZWJ and what follows it, variation
// selectors, skin tones, combining marks, a keycap, emoji tags.
function extendsCluster(cp) {
  return cp === 0x200d || cp === 0xfe0e || cp === 0xfe0f || (cp >= 0x1f3fb && cp <= 0x1f3ff) ||
    (cp >= 0x300 && cp <= 0x36f) || (cp >= 0x20d0 && cp <= 0x20ff) || (cp >= 0xe0020 && cp <= 0xe007f);
}

// UTF-16 units per grapheme: Twilio never splits an emoji sequence (a ZWJ
// family, a flag, a skin tone) across two parts.
function ucs2Clusters(chars) {
  const out = [];
  let prev = null;
  let flagOpen = false;
  for (const c of chars) {
    const cp = c.codePointAt(0);
    const ri = cp >= 0x1f1e6 && cp <= 0x1f1ff;
    const pairs = ri && flagOpen;
    if (out.length && (prev === 0x200d || extendsCluster(cp) || pairs)) out[out.length - 1] += c.length;
    else out.push(c.length);
    flagOpen = ri && !pairs;
    prev = cp;
  }
  return out;
}

export function analyze(text) {
  const chars = Array.from(text);
  let units = chars.map(septets);
  let encoding = 'GSM-7';
  let single = 160;
  let multi = 153;
  if (units.some((u) => u === null)) {
    encoding = 'UCS-2';
    units = ucs2Clusters(chars);
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
