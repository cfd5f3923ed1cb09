/**
 * The JSON envelope drops null members at any depth without copying every object (stripNulls). Its answers must be
 * byte-for-byte those of the copy it replaced (`oldStrip` below, as it was): compared on hand-made edge cases and
 * on random response-shaped values.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ResponseObject, ResponseValue } from './command.js';
import { csDate, serialize, withJsonText } from './envelope.js';

function isObject(v: ResponseValue): v is ResponseObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function oldStrip(o: ResponseObject): ResponseObject {
  const out: ResponseObject = {};
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined || v === null) continue;
    out[k] = Array.isArray(v) ? v.map((x) => (isObject(x) ? oldStrip(x) : x)) : isObject(v) ? oldStrip(v) : v;
  }
  return out;
}
const before = (name: string, body: ResponseObject) => JSON.stringify({ [name]: oldStrip(body) });

test('JSON answers are what the copying strip gave: edge cases', () => {
  const cases: ResponseObject[] = [
    {},
    { a: null, b: undefined, c: 1 },
    {
      count: 2,
      item: [
        { id: 'x', n: null, tags: [] },
        { id: 'y', tags: [{ key: 'k', value: null }] },
      ],
    },
    { list: [null, undefined, 1, 'a', [null, { z: null }], { q: null }] },
    { deep: { deeper: { deepest: { gone: null, kept: false, zero: 0, empty: '' } } } },
    { date: new Date(0) as unknown as ResponseValue, f: (() => 1) as unknown as ResponseValue },
    { proto: Object.assign(Object.create(null) as ResponseObject, { a: null, b: 2 }) },
    { toJSON: 'member', s: 'é<&>"\u0001' },
  ];
  // Names JSON must escape too: the envelope is written around the body, not as an object of one member.
  for (const name of ['r', 'queryasyncjobresultresponse', 'x"y\\z\u2028é\u0001'])
    for (const c of cases) {
      assert.equal(serialize(name, c, 'json').body, before(name, c));
      const spliced = serialize(name, withJsonText({ ...c }, 'jobresult', '{"a":[1]}'), 'json').body;
      assert.equal(spliced, before(name, { ...oldStrip(c), jobresult: { a: [1] } }));
    }
});

test('JSON answers are what the copying strip gave: random values', () => {
  let seed = 42;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const value = (depth: number): ResponseValue => {
    const r = rnd();
    if (r < 0.15) return null;
    if (r < 0.25) return undefined;
    if (r < 0.4) return Math.floor(rnd() * 100);
    if (r < 0.5) return rnd() < 0.5;
    if (r < 0.65 || depth > 3) return `s${Math.floor(rnd() * 1000)}`;
    if (r < 0.8) return Array.from({ length: Math.floor(rnd() * 4) }, () => value(depth + 1));
    return object(depth + 1);
  };
  const object = (depth: number): ResponseObject => {
    const o: ResponseObject = {};
    for (let i = Math.floor(rnd() * 6); i > 0; i--) o[`k${Math.floor(rnd() * 10)}`] = value(depth);
    return o;
  };
  for (let i = 0; i < 2000; i++) {
    const body = object(0);
    const snapshot = JSON.stringify(body);
    assert.equal(serialize('r', body, 'json').body, before('r', body));
    assert.equal(JSON.stringify(body), snapshot, 'the body is not changed');
  }
  // A job's stored result spliced in as its text (queryAsyncJobResult): the same answer as the parsed member, in
  // JSON and in XML, for stored texts without null (the only ones spliced), the envelope empty or not.
  let spliced = 0;
  for (let i = 0; i < 2000; i++) {
    const head = object(0);
    delete head.jobresult;
    const text = JSON.stringify(object(0));
    if (text.includes('null')) continue;
    spliced++;
    const parsed = { ...head, jobresult: JSON.parse(text) as ResponseObject };
    for (const format of ['json', 'xml'] as const)
      assert.equal(
        serialize('r', withJsonText({ ...head }, 'jobresult', text), format).body,
        serialize('r', parsed, format).body,
        `${format}: ${JSON.stringify(head)} + ${text}`,
      );
  }
  assert.ok(spliced > 500, `${spliced} spliced cases`);
  assert.equal(
    serialize('r', withJsonText({}, 'jobresult', '{"a":1}'), 'json').body,
    '{"r":{"jobresult":{"a":1}}}',
  );
});

test('csDate (which keeps the last second it formatted) gives what formatting each date anew gives', () => {
  const anew = (ms: number) => `${new Date(ms).toISOString().slice(0, 19)}+0000`;
  const base = Date.UTC(2026, 11, 7, 23, 59, 58, 0);
  // Within a second, across second, minute, day and year boundaries, back in time, before 1970, then at random.
  const dates = [
    base,
    base + 1,
    base + 999,
    base + 1000,
    base + 1999.5,
    base + 2000,
    base + 2001,
    base + 1,
    0,
  ];
  dates.push(-1, -999, -1000, -1001, Date.UTC(2026, 11, 31, 23, 59, 59, 999), Date.UTC(2027, 0, 1));
  for (let i = 0; i < 2000; i++) dates.push(base + Math.floor((Math.random() - 0.5) * 4000));
  for (const ms of dates) assert.equal(csDate(ms), anew(ms), String(ms));
  assert.equal(csDate(null), undefined);
  assert.equal(csDate(undefined), undefined);
  assert.throws(() => csDate(Number.NaN), RangeError);
});
