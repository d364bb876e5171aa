"""The population profile: who is in the extract's registered population, by age band,
sex, deprivation and ethnicity. The simplest built-in analysis, and the first any
project runs to check its extract."""

from __future__ import annotations

from datetime import date

from sde.phm.evidence import AnalysisResult, ChartSpec, count_table
from sde.phm.frames import Frames
from sde.phm.population import registered_population

BREAKDOWNS = (("age_band", "sex"), ("imd_quintile",), ("ethnic_group",))


def population_profile(frames: Frames, *, index_date: date) -> AnalysisResult:
    """People registered and alive on ``index_date`` by each breakdown the extract has."""
    people = registered_population(frames, index_date)
    tables = []
    for by in BREAKDOWNS:
        if all(column in people.columns for column in by):
            name = "people_by_" + "_and_".join(by)
            title = "Registered people by " + " and ".join(c.replace("_", " ") for c in by)
            tables.append(count_table(people, name=name, title=title, by=list(by)))
    charts = [ChartSpec(name=f"{t.name}_chart", table=t.name, kind="bar", x=t.dimensions[0],
                        y="people", title=t.title,
                        group=t.dimensions[1] if len(t.dimensions) > 1 else None)
              for t in tables]  # fmt: skip
    return AnalysisResult(tables=tables, charts=charts,
                          parameters={"index_date": index_date.isoformat()})  # fmt: skip
