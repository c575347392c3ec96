"""Extension points for apps above segments (STYLE 13: arrows never loop).

sentence_endpoints  URL names of API endpoints that turn a sentence into rules
                    (POST {"text"} -> {"rules", "explanation", "unparsed", "source"}, session auth
                    with CSRF). The admin's rule builder offers a text box when one is registered
                    (assist registers /api/ai/segment).
value_suggesters    field name -> callable(query) -> [(value, label)]: what the builder's value box
                    suggests for a field registered by a higher app (campaigns: its campaigns by name).
"""

sentence_endpoints = []
value_suggesters = {}
