/**
 * Strict checks that an API body is what its content type says: well-formed XML 1.0 (every character a legal
 * `Char`, names legal `Name`s, tags balanced, only predefined or numeric references) or valid JSON. A small
 * checker of our own so that the fuzz test depends on no XML library's leniency.
 */

/** XML 1.0 `Char`: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]. */
export function isXmlChar(cp: number): boolean {
  return (
    cp === 0x9 ||
    cp === 0xa ||
    cp === 0xd ||
    (cp >= 0x20 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd) ||
    (cp >= 0x10000 && cp <= 0x10ffff)
  );
}

function isNameStart(cp: number): boolean {
  return (
    cp === 0x3a ||
    cp === 0x5f ||
    (cp >= 0x41 && cp <= 0x5a) ||
    (cp >= 0x61 && cp <= 0x7a) ||
    (cp >= 0xc0 && cp <= 0xd6) ||
    (cp >= 0xd8 && cp <= 0xf6) ||
    (cp >= 0xf8 && cp <= 0x2ff) ||
    (cp >= 0x370 && cp <= 0x37d) ||
    (cp >= 0x37f && cp <= 0x1fff) ||
    (cp >= 0x200c && cp <= 0x200d) ||
    (cp >= 0x2070 && cp <= 0x218f) ||
    (cp >= 0x2c00 && cp <= 0x2fef) ||
    (cp >= 0x3001 && cp <= 0xd7ff) ||
    (cp >= 0xf900 && cp <= 0xfdcf) ||
    (cp >= 0xfdf0 && cp <= 0xfffd) ||
    (cp >= 0x10000 && cp <= 0xeffff)
  );
}

function isNameChar(cp: number): boolean {
  return (
    isNameStart(cp) ||
    cp === 0x2d ||
    cp === 0x2e ||
    (cp >= 0x30 && cp <= 0x39) ||
    cp === 0xb7 ||
    (cp >= 0x300 && cp <= 0x36f) ||
    (cp >= 0x203f && cp <= 0x2040)
  );
}

class XmlError extends Error {}

/**
 * Throws, saying where, unless `text` is one well-formed XML document (prolog, one root element with
 * attributes, text, child elements, character and predefined entity references; no DTD, comments or CDATA,
 * which API bodies never contain).
 */
export function assertWellFormedXml(text: string): void {
  const cps = Array.from(text);
  for (let i = 0; i < cps.length; i++) {
    const cp = cps[i]!.codePointAt(0)!;
    // Array.from keeps a lone surrogate as one element: it is not a Char.
    if (!isXmlChar(cp) || (cp >= 0xd800 && cp <= 0xdfff))
      throw new XmlError(`character U+${cp.toString(16).padStart(4, '0')} at ${i} is not allowed in XML 1.0`);
  }
  let pos = 0;
  const fail = (why: string): never => {
    throw new XmlError(`${why} at ${pos}: ${JSON.stringify(text.slice(Math.max(0, pos - 30), pos + 30))}`);
  };
  const name = (): string => {
    const start = pos;
    const first = text.codePointAt(pos);
    if (first === undefined || !isNameStart(first)) fail('expected a name');
    pos += first! > 0xffff ? 2 : 1;
    for (;;) {
      const cp = text.codePointAt(pos);
      if (cp === undefined || !isNameChar(cp)) break;
      pos += cp > 0xffff ? 2 : 1;
    }
    return text.slice(start, pos);
  };
  const ws = () => {
    while (pos < text.length && ' \t\r\n'.includes(text[pos]!)) pos++;
  };
  const reference = () => {
    // at '&'
    const end = text.indexOf(';', pos);
    if (end < 0) fail('unterminated reference');
    const body = text.slice(pos + 1, end);
    let ok = ['amp', 'lt', 'gt', 'quot', 'apos'].includes(body);
    const m = /^#(?:x([0-9a-fA-F]+)|([0-9]+))$/.exec(body);
    if (m) ok = isXmlChar(m[1] !== undefined ? parseInt(m[1], 16) : parseInt(m[2]!, 10));
    if (!ok) fail(`bad reference &${body};`);
    pos = end + 1;
  };
  const charData = (stopAt: string) => {
    while (pos < text.length && text[pos] !== stopAt && text[pos] !== '<') {
      if (text[pos] === '&') reference();
      else if (text.startsWith(']]>', pos)) fail("']]>' in text");
      else pos++;
    }
  };
  const element = () => {
    if (text[pos] !== '<') fail("expected '<'");
    pos++;
    const tag = name();
    const seen = new Set<string>();
    for (;;) {
      const before = pos;
      ws();
      if (text.startsWith('/>', pos)) {
        pos += 2;
        return;
      }
      if (text[pos] === '>') {
        pos++;
        break;
      }
      if (pos === before) fail('expected whitespace before an attribute');
      const attr = name();
      if (seen.has(attr)) fail(`attribute ${attr} repeated`);
      seen.add(attr);
      ws();
      if (text[pos] !== '=') fail("expected '='");
      pos++;
      ws();
      const q = text[pos];
      if (q !== '"' && q !== "'") fail('expected a quoted attribute value');
      pos++;
      while (pos < text.length && text[pos] !== q) {
        if (text[pos] === '<') fail("'<' in an attribute value");
        if (text[pos] === '&') reference();
        else pos++;
      }
      if (pos >= text.length) fail('unterminated attribute value');
      pos++;
    }
    for (;;) {
      charData('<');
      if (pos >= text.length) fail(`<${tag}> is not closed`);
      if (text.startsWith('</', pos)) {
        pos += 2;
        const closing = name();
        if (closing !== tag) fail(`</${closing}> closes <${tag}>`);
        ws();
        if (text[pos] !== '>') fail("expected '>'");
        pos++;
        return;
      }
      element();
    }
  };
  if (text.startsWith('<?xml')) {
    const end = text.indexOf('?>');
    if (end < 0) fail('unterminated XML declaration');
    if (!/^<\?xml version="1\.0"( encoding="[A-Za-z][A-Za-z0-9._-]*")?\s*\?>$/.test(text.slice(0, end + 2)))
      fail('bad XML declaration');
    pos = end + 2;
  }
  ws();
  element();
  ws();
  if (pos !== text.length) fail('content after the root element');
}
