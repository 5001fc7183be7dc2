"""A Rasa tokenizer for Chinese and Vietnamese chat messages.

Rasa's whitespace tokenizer cannot split Chinese, and treats "không", "khong" and "ko" as three
words. This one gives each Chinese character a token of its own (the featuriser's n-grams then see
character pairs, which is how short Chinese questions are best matched without a dictionary) and
folds Vietnamese to one form without diacritics, with chat abbreviations expanded
(see `bot.normalize`).
"""

from __future__ import annotations

from typing import Any, Dict, List

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.tokenizers.tokenizer import Token, Tokenizer
from rasa.shared.nlu.training_data.message import Message

from bot.normalize import fold, words


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class HelplineTokenizer(Tokenizer):
    """Tokens for Chinese characters and folded Vietnamese words."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        """The component's default configuration (the options of every Rasa tokenizer)."""
        return {
            "intent_tokenization_flag": False,
            "intent_split_symbol": "_",
            "token_pattern": None,
            "prefix_separator_symbol": None,
        }

    def tokenize(self, message: Message, attribute: str) -> List[Token]:
        """Split the text of `attribute` into normalised tokens.

        A message with no letters or digits (only emoji or punctuation) becomes one token of its
        folded text, so that every message has at least one token as Rasa's featurisers expect.
        """
        text = message.get(attribute)
        tokens = [Token(word.text, word.start, word.end) for word in words(text)]
        if not tokens:
            tokens = [Token(fold(text).strip() or text, 0, len(text))]
        return self._apply_token_pattern(tokens)
