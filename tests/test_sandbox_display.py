"""What the sandbox shows agrees with itself: its scenario's words and the cards the bot posts."""

from __future__ import annotations

from bot.playbooks.remediations import REMEDIATIONS
from sandbox.platform import SimulatedPlatform
from sandbox.slack_api import FakeSlack
from tests.test_sandbox import _services


async def test_the_rollback_card_ages_the_bad_revision_as_the_scenario_tells_it(
    dsn: str, slack: FakeSlack
) -> None:
    """bad-deploy says 1.4.2 "went out 12 minutes ago" (`uptime: 12m`): the card agrees."""
    async with (
        SimulatedPlatform("bad-deploy") as platform,
        _services(platform, dsn, slack) as services,
    ):
        assert "went out 12 minutes ago" in platform.scenario.summary
        params = REMEDIATIONS["rollback_deployment"].params.model_validate(
            {"deployment": "payment-service"}
        )
        preview = await services.remediator.preview("rollback_deployment", params)
        text = " ".join(preview.lines)
        assert "revision 3: `waqiti/payment-service:1.4.2` (12m old)" in text, text
        assert "revision 2: `waqiti/payment-service:1.4.1` (1h 12m old)" in text, text
