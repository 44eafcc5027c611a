// What the family needs to find the person in ICE's detainee locator
// (locator.ice.gov): legal name, country and date of birth, A-number.
// Behind the PIN; loaded when opened, like the history: the first load
// stays as small as the button needs. The contacts who receive it are
// marked in each contact's editor.

import { t, addStrings } from './i18n.js';

addStrings({
  es: {
    locator_title: 'Para que te encuentren',
    locator_body: 'Si te detienen, tu familia te busca en locator.ice.gov. Necesita tu país de nacimiento y tu número A o tu nombre legal completo. Todo es opcional y se guarda cifrado. Elige en cada contacto quién lo recibe (por ejemplo tu abogado y un familiar): les llega en un segundo SMS después de la alerta.',
    locator_legal_name: 'Nombre legal completo (como en tus documentos)',
    locator_birth_country: 'País de nacimiento',
    locator_birth_date: 'Fecha de nacimiento',
    locator_a_number: 'Número A (si tienes uno)',
    locator_a_number_why: '8 o 9 dígitos, en tus papeles de inmigración. Con o sin la A.',
    locator_save: 'Guardar',
    locator_saved: 'Guardado.',
    locator_searchable: 'Con esto tu familia puede buscarte. Marca en tus contactos quién lo recibe.',
    locator_not_searchable: 'Falta el país de nacimiento, y el número A o el nombre legal, para poder buscarte.',
  },
  en: {
    locator_title: 'So they can find you',
    locator_body: 'If you are detained, your family looks for you at locator.ice.gov. It needs your country of birth and your A-number or your full legal name. All optional, stored encrypted. Choose in each contact who receives it (your lawyer and one relative, say): it reaches them in a second SMS after the alert.',
    locator_legal_name: 'Full legal name (as on your documents)',
    locator_birth_country: 'Country of birth',
    locator_birth_date: 'Date of birth',
    locator_a_number: 'A-number (if you have one)',
    locator_a_number_why: '8 or 9 digits, on your immigration papers. With or without the A.',
    locator_save: 'Save',
    locator_saved: 'Saved.',
    locator_searchable: 'With this your family can look for you. Mark in your contacts who receives it.',
    locator_not_searchable: 'Your country of birth, and your A-number or legal name, are needed to look for you.',
  },
});

export async function locatorScreen(ui, message) {
  const { h, show, field, api, showError, clearErrors } = ui;
  show(h('h1', { text: t('locator_title') }), h('p', { class: 'loading', text: t('loading') }));
  let current = {};
  try {
    const r = await api('GET', '/api/v1/profile/locator');
    if (r.ok) current = r.data;
  } catch { /* offline: an empty form, saving says why it failed */ }
  const fields = {
    legal_name: field({ id: 'legal_name', label: t('locator_legal_name'), value: current.legal_name || '', attrs: { maxlength: '100', autocomplete: 'off' } }),
    birth_country: field({ id: 'birth_country', label: t('locator_birth_country'), value: current.birth_country || '', attrs: { maxlength: '56', autocomplete: 'off' } }),
    birth_date: field({ id: 'birth_date', label: t('locator_birth_date'), type: 'date', value: current.birth_date || '', attrs: { min: '1900-01-01' } }),
    a_number: field({ id: 'a_number', label: t('locator_a_number'), why: t('locator_a_number_why'), value: current.a_number ? `A${current.a_number}` : '', attrs: { inputmode: 'text', maxlength: '16', autocomplete: 'off' } }),
  };
  const general = h('p', { class: 'error', role: 'alert' });
  const form = h('form', {
    id: 'locator-form',
    onsubmit: async (e) => {
      e.preventDefault();
      clearErrors(fields);
      general.textContent = '';
      const body = Object.fromEntries(Object.entries(fields).map(([k, f]) => [k, f.input.value.trim() || null]));
      try {
        const r = await api('PUT', '/api/v1/profile/locator', body);
        if (r.ok) locatorScreen(ui, `${t('locator_saved')} ${t(r.data.searchable ? 'locator_searchable' : 'locator_not_searchable')}`);
        else showError(r, fields, general);
      } catch (err) {
        general.textContent = err.message;
      }
    },
  }, Object.values(fields).map((f) => f.node), general,
  h('button', { class: 'button', type: 'submit', id: 'locator-save', text: t('locator_save') }));
  show(
    h('h1', { text: t('locator_title') }),
    message ? h('p', { class: 'note', role: 'status', text: message }) : null,
    h('p', { class: 'muted', text: t('locator_body') }),
    form,
    h('a', { class: 'button secondary', href: '#/settings', text: t('back') }),
  );
}
