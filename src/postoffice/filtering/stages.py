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
    from postoffice.filtering.sieve_delivery import SieveStage

    config = services.config
    message_stages: list[MessageStage] = []
    account_stages: list[AccountStage] = []
    if config.spam.enabled:
        from postoffice.filtering.spam_stage import SpamScoreStage

        message_stages.append(SpamScoreStage(services.spam_judge))
    if config.junk.learning:  # after the score (it adds to it), before Sieve (spamtest reads it)
        from postoffice.filtering.junk_stage import JunkClassifierStage

        account_stages.append(JunkClassifierStage(services.store, config.junk))
    account_stages.append(SieveStage(
        services.store, before=config.sieve.before, after=config.sieve.after, hostname=config.server.hostname,
        max_redirects=config.sieve.max_redirects, subaddress_delimiter=config.smtp.recipient_delimiter,
        signer=services.signer, directory=services.directory))
    return FilterPipeline(tuple(message_stages), tuple(account_stages))

