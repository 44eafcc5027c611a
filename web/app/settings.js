// The settings, behind the PIN: the countdown, the language, where the
// name goes in the contacts' SMS, the PIN and the duress PIN, the locator
// details and "delete my data". Loaded when opened, like the history: the
// first load stays as small as the button needs.

import { t, lang, setLang, addStrings } from './i18n.js';

addStrings({
  es: {
    name_place_label: 'Tu nombre en los mensajes a tus contactos («Avisa: … pide ayuda»)',
    name_place_start: 'Al principio',
    name_place_end: 'Al final',
    name_place_saved: 'Listo: tu nombre va donde elegiste.',
    locator_link: 'Para que te encuentren',
    locator_link_body: 'Tu nombre legal, nacimiento y número A, para que tu familia te busque en el localizador de ICE si te detienen.',
    settings_title: 'Ajustes',
    countdown_label: 'Segundos de conteo antes de enviar: {n}',
    countdown_why: 'Te da tiempo de cancelar si lo presionaste sin querer.',
    change_pin_title: 'Cambiar PIN',
    current_pin_label: 'PIN actual',
    new_pin_label: 'PIN nuevo',
    change_pin: 'Cambiar PIN',
    pin_changed: 'PIN cambiado.',
    pin_protects: 'El PIN protege tus contactos, tus mensajes y tus datos dentro de Avisa. No protege lo que está fuera de Avisa: los mensajes de texto de tu teléfono, tus llamadas ni los contactos del teléfono.',
    duress_title: 'PIN de emergencia',
    duress_body: 'Si alguien te obliga a cancelar, usa este PIN en lugar del tuyo. Tu teléfono mostrará «Alerta cancelada» como siempre, pero la alerta sigue: el consulado lo verá marcado y tus contactos sabrán que te obligaron. Debe ser distinto de tu PIN. Nadie puede ver si lo tienes.',
    duress_label: 'PIN de emergencia (4 a 8 números)',
    duress_save: 'Guardar PIN de emergencia',
    duress_remove: 'Quitar PIN de emergencia',
    duress_saved: 'Listo.',
    delete_title: 'Borrar mis datos',
    delete_body: 'Borra tu perfil, tus contactos y este teléfono del servidor. No se puede deshacer.',
    delete_button: 'Borrar todo',
    deleted: 'Tus datos fueron borrados.',
  },
  en: {
    name_place_label: 'Your name in your contacts\' messages ("Avisa: … needs help")',
    name_place_start: 'At the start',
    name_place_end: 'At the end',
    name_place_saved: 'Done: your name goes where you chose.',
    locator_link: 'So they can find you',
    locator_link_body: 'Your legal name, birth and A-number, so your family can look for you in ICE\'s locator if you are detained.',
    settings_title: 'Settings',
    countdown_label: 'Countdown seconds before sending: {n}',
    countdown_why: 'Gives you time to cancel if you pressed by mistake.',
    change_pin_title: 'Change PIN',
    current_pin_label: 'Current PIN',
    new_pin_label: 'New PIN',
    change_pin: 'Change PIN',
    pin_changed: 'PIN changed.',
    pin_protects: 'The PIN protects your contacts, your messages and your data inside Avisa. It does not protect what is outside Avisa: your phone\'s text messages, your calls or the phone\'s contacts.',
    duress_title: 'Emergency PIN',
    duress_body: 'If someone forces you to cancel, use this PIN instead of yours. Your phone will show "Alert cancelled" as always, but the alert stands: the consulate sees it flagged and your contacts learn you were forced. It must differ from your PIN. Nobody can see whether you have one.',
    duress_label: 'Emergency PIN (4 to 8 digits)',
    duress_save: 'Save emergency PIN',
    duress_remove: 'Remove emergency PIN',
    duress_saved: 'Done.',
    delete_title: 'Delete my data',
    delete_body: 'Deletes your profile, your contacts and this phone from the server. It cannot be undone.',
    delete_button: 'Delete everything',
    deleted: 'Your data was deleted.',
  },
});

// Where the person's name goes, as last read or saved (memory only): a
// redrawn screen shows it at once, not the first option until the server
// answers.
let nameAtEnd = null;

export function settingsScreen(ui, message) {
  const { h, show, field, api, apiError, showError, setFieldError, clearErrors, keepUnlock, forget, clearPending, welcome, countdownSeconds, followLanguage, render } = ui;
  const again = (m) => settingsScreen(ui, m);
  const seconds = countdownSeconds();
  const label = h('label', { for: 'countdown', text: t('countdown_label', { n: seconds }) });
  const range = h('input', {
    id: 'countdown', type: 'range', min: '0', max: '10', step: '1', value: String(seconds),
    oninput: (e) => { localStorage.setItem('avisa.countdown', e.target.value); label.textContent = t('countdown_label', { n: e.target.value }); },
  });
  const language = h('select', { id: 'settings-language', onchange: (e) => { setLang(e.target.value); followLanguage(); render(); } },
    h('option', { value: 'es', selected: lang() === 'es', text: 'Español' }),
    h('option', { value: 'en', selected: lang() === 'en', text: 'English' }));
  const pins = {
    current_pin: field({ id: 'current_pin', label: t('current_pin_label'), type: 'password', attrs: { inputmode: 'numeric', maxlength: '8' } }),
    cancel_pin: field({ id: 'new_pin', label: t('new_pin_label'), type: 'password', attrs: { inputmode: 'numeric', maxlength: '8' } }),
    pin_again: field({ id: 'new_pin_again', label: t('pin_again_label'), type: 'password', attrs: { inputmode: 'numeric', maxlength: '8' } }),
  };
  const pinGeneral = h('p', { class: 'error', role: 'alert' });
  // The duress PIN: the screen never says whether one is set.
  const duress = {
    duress_pin: field({ id: 'duress_pin', label: t('duress_label'), type: 'password', attrs: { inputmode: 'numeric', maxlength: '8' } }),
    duress_again: field({ id: 'duress_again', label: t('pin_again_label'), type: 'password', attrs: { inputmode: 'numeric', maxlength: '8' } }),
  };
  const duressGeneral = h('p', { class: 'error', role: 'alert' });
  const saveDuress = async (pin) => {
    clearErrors(duress);
    duressGeneral.textContent = '';
    if (pin && pin !== duress.duress_again.input.value) return setFieldError(duress, 'duress_again', t('pin_mismatch'));
    try {
      const current = await api('GET', '/api/v1/profile');
      if (!current.ok) return showError(current, duress, duressGeneral);
      const p = current.data;
      const r = await api('PUT', '/api/v1/profile', {
        name: p.name, home_state: p.home_state, home_county: p.home_county, language: p.language, keyword: p.keyword, name_at_end: p.name_at_end, duress_pin: pin,
      });
      if (r.ok) again(t('duress_saved'));
      else showError(r, duress, duressGeneral);
    } catch (err) {
      duressGeneral.textContent = err.message;
    }
  };
  // Where each contact's SMS says who is asking: first, or at the end.
  let touched = false;
  const whereName = h('select', {
    id: 'name-at-end',
    onchange: async (e) => {
      touched = true;
      try {
        const current = await api('GET', '/api/v1/profile');
        if (!current.ok) return;
        const p = current.data;
        const r = await api('PUT', '/api/v1/profile', {
          name: p.name, home_state: p.home_state, home_county: p.home_county, language: p.language, keyword: p.keyword, name_at_end: e.target.value === 'end',
        });
        if (r.ok) {
          nameAtEnd = e.target.value === 'end';
          again(t('name_place_saved'));
        }
      } catch { /* offline: the choice stays as it was */ }
    },
  }, h('option', { value: 'start', text: t('name_place_start') }), h('option', { value: 'end', text: t('name_place_end') }));
  if (nameAtEnd !== null) whereName.value = nameAtEnd ? 'end' : 'start';
  // The server's word, unless the person chose meanwhile (a late answer is
  // never drawn over their choice).
  api('GET', '/api/v1/profile').then((r) => {
    if (!r.ok || touched) return;
    nameAtEnd = r.data.name_at_end;
    whereName.value = nameAtEnd ? 'end' : 'start';
  }).catch(() => {});
  const del = field({ id: 'delete_pin', label: t('pin_prompt'), type: 'password', attrs: { inputmode: 'numeric', maxlength: '8' } });
  const delGeneral = h('p', { class: 'error', role: 'alert' });
  show(
    h('h1', { text: t('settings_title') }),
    message ? h('p', { class: 'note', role: 'status', text: message }) : null,
    h('label', { for: 'settings-language', text: t('language_label') }), language,
    label, h('span', { class: 'why', text: t('countdown_why') }), range,
    h('h2', { text: t('change_pin_title') }),
    h('form', {
      onsubmit: async (e) => {
        e.preventDefault();
        clearErrors(pins);
        pinGeneral.textContent = '';
        if (pins.cancel_pin.input.value !== pins.pin_again.input.value) return setFieldError(pins, 'pin_again', t('pin_mismatch'));
        try {
          const current = await api('GET', '/api/v1/profile');
          if (!current.ok) return showError(current, pins, pinGeneral);
          const p = current.data;
          const r = await api('PUT', '/api/v1/profile', {
            name: p.name, home_state: p.home_state, home_county: p.home_county, language: p.language, keyword: p.keyword, name_at_end: p.name_at_end,
            cancel_pin: pins.cancel_pin.input.value, current_pin: pins.current_pin.input.value,
          });
          if (r.ok) { keepUnlock(r.data); again(t('pin_changed')); }
          else if (apiError(r).code === 'pin_incorrect') setFieldError(pins, 'current_pin', apiError(r).message);
          else showError(r, pins, pinGeneral);
        } catch (err) {
          pinGeneral.textContent = err.message;
        }
      },
    }, pins.current_pin.node, pins.cancel_pin.node, pins.pin_again.node, pinGeneral, h('button', { class: 'button', type: 'submit', text: t('change_pin') })),
    h('p', { class: 'muted', text: t('pin_protects') }),
    h('h2', { text: t('duress_title') }),
    h('p', { class: 'muted', text: t('duress_body') }),
    h('form', { id: 'duress-form', onsubmit: (e) => { e.preventDefault(); saveDuress(duress.duress_pin.input.value); } },
      duress.duress_pin.node, duress.duress_again.node, duressGeneral,
      h('button', { class: 'button', type: 'submit', id: 'duress-save', text: t('duress_save') }),
      h('button', { class: 'button secondary', type: 'button', id: 'duress-remove', text: t('duress_remove'), onclick: () => saveDuress('') })),
    h('label', { for: 'name-at-end', text: t('name_place_label') }), whereName,
    h('h2', { text: t('locator_link') }),
    h('p', { class: 'muted', text: t('locator_link_body') }),
    h('a', { class: 'button secondary', href: '#/locator', id: 'locator-link', text: t('locator_link') }),
    h('h2', { text: t('delete_title') }),
    h('p', { class: 'muted', text: t('delete_body') }),
    h('form', {
      onsubmit: async (e) => {
        e.preventDefault();
        clearErrors({ pin: del });
        delGeneral.textContent = '';
        try {
          const r = await api('DELETE', '/api/v1/profile', { pin: del.input.value });
          if (r.ok) {
            forget();
            await clearPending(true);
            history.replaceState(null, '', '/');
            welcome(t('deleted'));
          } else if (['pin_incorrect', 'pin_invalid', 'pin_locked'].includes(apiError(r).code)) {
            setFieldError({ pin: del }, 'pin', apiError(r).message);
          } else {
            delGeneral.textContent = apiError(r).message;
          }
        } catch (err) {
          delGeneral.textContent = err.message;
        }
      },
    }, del.node, delGeneral, h('button', { class: 'button danger', type: 'submit', text: t('delete_button') })),
    h('a', { class: 'button secondary', href: '#/', text: t('back_home') }),
  );
}
