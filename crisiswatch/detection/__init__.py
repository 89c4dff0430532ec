"""Detection maths (pure and deterministic): event-time buckets, the brand's memory, the detector.

Closed buckets go in, incident events come out. Negative mentions are counts
judged as counts against a baseline that learns each brand's level, daily
and weekly rhythm and spread; several look-back windows and day-scale
horizons end at every bucket, each with a threshold calibrated on the
brand's own ordinary days. The modules, each building only on those listed
before it:

- :mod:`.windows`: mentions into event-time buckets; :mod:`.memory`: the hourly memory of the last weeks;
- :mod:`.config`: the settings; :mod:`.state`: what is kept per brand and the per-bucket scores;
- :mod:`.count_laws`: count laws into surprises; :mod:`.baseline`: what is normal and how it learns;
- :mod:`.scoring`: the look-back windows; :mod:`.calibration`: their thresholds;
  :mod:`.horizons`: the day-scale horizons; :mod:`.alarms`: when a window opens an incident;
- :mod:`.history`: recent history for charts; :mod:`.events`: incident events;
- :mod:`.lifecycle`: open, escalate, resolve (``judge``, ``step``); :mod:`.actions`: people's actions.

The same code runs in the live alerter and in offline backtests. Imports
only :mod:`crisiswatch.contracts`, and nothing here: importing
:mod:`.config` does not load scipy.
"""
