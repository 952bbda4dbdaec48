"""Display helpers for the console: table rows, chart figures and safe text.

Nothing here imports streamlit, so the pages stay thin and these helpers stay testable.
"""

from opsforge_core.views.charts import (
    MAX_POINTS,
    SEVERITY_COLORS,
    anomaly_figure,
    count_points,
    counter_rate,
    downsample_minmax,
    service_figure,
)
from opsforge_core.views.forecast import forecast_figure, forecast_rows
from opsforge_core.views.graph import dependency_figure
from opsforge_core.views.tables import (
    PageSlice,
    alert_rows,
    count_by,
    format_time,
    incident_label,
    incident_rows,
    knowledge_rows,
    paginate,
    pattern_matches,
    pattern_rows,
    settings_rows,
    sort_alerts,
    table_info_rows,
)
from opsforge_core.views.text import escape_markdown, format_duration, mask_secret, shorten

__all__ = [
    "MAX_POINTS",
    "SEVERITY_COLORS",
    "PageSlice",
    "alert_rows",
    "anomaly_figure",
    "count_by",
    "count_points",
    "counter_rate",
    "dependency_figure",
    "downsample_minmax",
    "escape_markdown",
    "forecast_figure",
    "forecast_rows",
    "format_duration",
    "format_time",
    "incident_label",
    "incident_rows",
    "knowledge_rows",
    "mask_secret",
    "paginate",
    "pattern_matches",
    "pattern_rows",
    "service_figure",
    "settings_rows",
    "shorten",
    "sort_alerts",
    "table_info_rows",
]
