"""Caption text: tokenisation and the word vocabulary.

- `vocab`  caption tokenisation (the tokens of `nltk.word_tokenize`) and the word `Vocabulary`

May import: `helpers.data`, `helpers.config`.
"""
