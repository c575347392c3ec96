"""The bottom layer: API conventions and request guards every app shares (errors, parsing, pagination,
throttles, the fail-soft cache, reachability checks, the dev mail backend). It imports no app of ours,
so every other app may import it and every arrow points down."""
