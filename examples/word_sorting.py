def sort_words(words: list[str]) -> list[str]:
    """Sort words alphabetically, ignoring case.

    Args:
        words: the words to sort.
    """
    return sorted(words, key=lambda word: word.lower())


# Example usage:
words = ["vegetate", "artillery", "harm", "fda", "doris"]
sorted_words = sort_words(words)
print(sorted_words)
