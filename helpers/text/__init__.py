"""Caption text: tokenisation and the word vocabulary.

- `vocab`      caption tokenisation (the tokens of `nltk.word_tokenize`) and the word `Vocabulary`
- `languages`  French and German tokenisation and detokenisation (elision, accents, German case)

May import: `helpers.data`, `helpers.config`.
"""
