"""The stages of this server's filtering pipeline, in order, built once from the config.

Each filter adds itself here (one line per stage); `Services.filters` calls `build_pipeline`.
The order matters: message stages first (the spam score, which may refuse), then per account
the junk classifier (it feeds the account's score) and the Sieve scripts (global before, the
user's, global after), which see the score through spamtest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from postoffice.filtering.pipeline import AccountStage, FilterPipeline, MessageStage

if TYPE_CHECKING:
    from postoffice.services import Services


def build_pipeline(services: Services) -> FilterPipeline:
    message_stages: list[MessageStage] = []
    account_stages: list[AccountStage] = []
    return FilterPipeline(tuple(message_stages), tuple(account_stages))
