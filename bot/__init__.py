"""The Rasa assistant's own parts: text normalisation, the tokenizer component, the domain."""
