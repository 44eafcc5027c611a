// The API reference, drawn from the server's own OpenAPI document: one
// section per tag, one entry per operation with its parameters, its body
// and every status it can answer. Nothing is kept by hand.

const h = (tag, attrs = {}, ...children) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') el.textContent = v;
    else if (v !== null && v !== undefined) el.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
};

const refName = (ref) => ref.split('/').pop();

// A schema in one line: its name, or its type with what it holds.
function typeOf(s) {
  if (!s) return '';
  if (s.$ref) return refName(s.$ref);
  if (s.oneOf || s.anyOf) return (s.oneOf || s.anyOf).map(typeOf).join(' | ');
  if (s.allOf) return s.allOf.map(typeOf).join(' & ');
  if (s.type === 'array') return `[${typeOf(s.items)}]`;
  if (s.enum) return s.enum.map((e) => JSON.stringify(e)).join(' | ');
  const t = Array.isArray(s.type) ? s.type.join(' | ') : s.type || 'object';
  return s.format ? `${t} (${s.format})` : t;
}

// A named schema's fields, as a table.
function fields(doc, name) {
  const s = (doc.components && doc.components.schemas && doc.components.schemas[name]) || null;
  if (!s || !s.properties) return null;
  const required = new Set(s.required || []);
  return h('table', { class: 'fields' },
    h('tbody', {}, Object.entries(s.properties).map(([k, p]) => h('tr', {},
      h('td', {}, h('code', { text: k }), required.has(k) ? ' *' : ''),
      h('td', {}, h('code', { text: typeOf(p) })),
      h('td', { text: p.description || '' })))));
}

function body(doc, content) {
  if (!content) return null;
  return Object.entries(content).map(([type, c]) => {
    const t = typeOf(c.schema);
    const name = c.schema && c.schema.$ref ? refName(c.schema.$ref) : null;
    return h('div', { class: 'body' }, h('code', { text: `${type}${t ? `: ${t}` : ''}` }), name ? fields(doc, name) : null);
  });
}

function operation(doc, path, method, op) {
  const id = `${method}-${path}`.replace(/[^a-z0-9]+/gi, '-');
  const params = (op.parameters || []).map((p) => h('li', {},
    h('code', { text: p.name }), ` (${p.in}${p.required ? ', obligatorio' : ''}) `, h('code', { text: typeOf(p.schema) }), p.description ? ` — ${p.description}` : ''));
  const responses = Object.entries(op.responses || {}).map(([status, r]) => h('li', {},
    h('strong', { class: `status s${status[0]}`, text: status }), ' ', r.description || '',
    r.content ? h('div', {}, body(doc, r.content)) : null));
  return h('section', { class: 'op', id },
    h('h3', {}, h('span', { class: `method ${method}`, text: method.toUpperCase() }), ' ', h('code', { text: path })),
    op.summary ? h('p', { class: 'summary', text: op.summary }) : null,
    op.description ? h('p', { class: 'description', text: op.description }) : null,
    params.length ? [h('h4', { text: 'Parámetros' }), h('ul', {}, params)] : null,
    op.requestBody ? [h('h4', { text: 'Cuerpo' }), body(doc, op.requestBody.content)] : null,
    h('h4', { text: 'Respuestas' }), h('ul', { class: 'responses' }, responses));
}

async function main() {
  const ops = document.getElementById('ops');
  const r = await fetch('/api/openapi.json');
  if (!r.ok) { ops.replaceChildren(h('p', { text: `No se pudo leer el documento (${r.status}).` })); return; }
  const doc = await r.json();
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const [method, op] of Object.entries(item)) {
      if (!['get', 'put', 'post', 'patch', 'delete'].includes(method)) continue;
      const tag = (op.tags && op.tags[0]) || 'other';
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([path, method, op]);
    }
  }
  const tags = [...byTag.keys()].sort();
  document.getElementById('toc').replaceChildren(h('ul', {}, tags.map((t) => h('li', {}, h('a', { href: `#tag-${t}`, text: `${t} (${byTag.get(t).length})` })))));
  ops.replaceChildren(
    h('p', { class: 'meta', text: `${doc.info.title} ${doc.info.version} · OpenAPI ${doc.openapi}` }),
    ...tags.map((t) => h('section', { class: 'tag', id: `tag-${t}` },
      h('h2', { text: t }),
      byTag.get(t).map(([path, method, op]) => operation(doc, path, method, op)))));
}

main();
