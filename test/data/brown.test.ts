import { describe, expect, it } from 'vitest';
import { brownCorpusDir, brownCorpusText, brownDocuments, detokenize, untagBrown, untagToken } from '../../reformer/data/brown.ts';

describe('Brown corpus', () => {
  it('finds the installed package and its 500 documents', () => {
    const docs = brownDocuments(brownCorpusDir());
    expect(docs.length).toBe(500);
    expect(docs[0]).toEqual({ id: 'ca01', category: 'news' });
  });

  it('untags and detokenises a tagged sentence', () => {
    const tagged = "\tThe/at Fulton/np-tl jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, and/or/cc 1/2/cd (/( ok/uh )/) Jr./np ./.\n\n";
    expect(untagBrown(tagged)).toBe('The Fulton jury said "no evidence", and/or 1/2 (ok) Jr.');
    expect(untagToken('it\'s/pps+bez')).toBe("it's");
    expect(detokenize(['He', 'asked', ':', 'why', '?'])).toBe('He asked: why?');
    expect(untagBrown('\ta/at survival/nn (/( revival/nn ?/.\n\n\t)/) of/in art/nn ./.\n')).toBe('a survival (revival?) of art.');
  });

  it('the default corpus is readable text with no part-of-speech tags left', () => {
    const text = brownCorpusText();
    expect(text.length).toBeGreaterThan(5_000_000);
    expect(text.startsWith('The Fulton County Grand Jury said Friday an investigation of')).toBe(true);
    // Tags look like "/nn", "/at", "/np-tl", "/vbd"; words with a real slash (1/2, and/or) stay.
    // (Punctuation tags are not checked this way: the text has phonetic notation such as "/r/.".)
    expect(text.match(/[A-Za-z.,'`]\/(at|nn|nns|np|in|vbd|vbn|jj|cc|cs|rb|nn-tl|np-tl|pps|ppss|dt|to|md|``|'')(?=\s|$)/g)).toBeNull();
    expect(text.match(/\/(\.|,) /g)?.length ?? 0).toBeLessThan(5);
    expect(text).not.toContain('``');
    expect(text).not.toMatch(/(^|\s)''(\s|$)/); // (inch marks such as 12'' are words of the corpus)
    const slashes = (text.match(/\//g) ?? []).length;
    expect(slashes).toBeLessThan(1000); // the tagged source has over a million
  });

  it('filters by category with clear errors', () => {
    const news = brownCorpusText({ categories: ['news'], maxDocuments: 2 });
    expect(news.split('\n\n').length).toBe(2);
    expect(() => brownCorpusText({ categories: ['poetry'] })).toThrow(/unknown category 'poetry' \(known: .*news/);
  });
});
