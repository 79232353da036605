"""The With Sense studio dashboard: `streamlit run dashboard/app.py` (or `./studio demo`)."""
