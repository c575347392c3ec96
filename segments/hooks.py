"""Extension points for apps above segments (STYLE 13: arrows never loop).

sentence_endpoints  URL names of API endpoints that turn a sentence into rules
                    (POST {"text"} -> {"rules", "explanation", "unparsed", "source"}, session auth
                    with CSRF). The admin's rule builder offers a text box when one is registered
                    (assist registers /api/ai/segment).
"""

sentence_endpoints = []
