// The countries a number can belong to: México and Estados Unidos first,
// then every other with a telephone numbering plan, by name in the app's
// language. The codes are the server's (avisa_core::phone::Country); a
// server test parses every one of them.

export const FIRST = ['MX', 'US'];

export const CODES = 'AC AD AE AF AG AI AL AM AO AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GT GU GW GY HK HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TA TC TD TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG US UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW'.split(' ');

const names = {};

export function countryName(code, language) {
  names[language] ??= new Intl.DisplayNames([language], { type: 'region' });
  try {
    return names[language].of(code) || code;
  } catch {
    return code;
  }
}

// The flag emoji: two regional-indicator letters.
export function flag(code) {
  return String.fromCodePoint(...[...code].map((c) => 0x1f1e6 + c.charCodeAt(0) - 65));
}

// México, Estados Unidos, then the rest by name: [{code, label}].
export function countryOptions(language) {
  const rest = CODES.filter((c) => !FIRST.includes(c))
    .map((code) => ({ code, name: countryName(code, language) }))
    .sort((a, b) => a.name.localeCompare(b.name, language));
  return [...FIRST.map((code) => ({ code, name: countryName(code, language) })), ...rest]
    .map(({ code, name }) => ({ code, label: `${flag(code)} ${name}` }));
}
