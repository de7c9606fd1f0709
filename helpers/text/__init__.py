"""Caption text: tokenisation and the word vocabulary.

- `vocab`      caption tokenisation (the tokens of `nltk.word_tokenize`) and the word `Vocabulary`
- `languages`  French and German tokenisation and detokenisation (elision, accents, German case)
- `alignment`  which English word each French or German word translates, from parallel captions
- `inflection` agreement repaired from the training captions' n-gram counts ("sont assis" -> "assises")

May import: `helpers.data`, `helpers.config`.
"""
