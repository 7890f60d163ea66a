"""A load's steps in order, beside flows/ which runs them under Prefect: plan what to fetch
(planning), check and gate what came back (checks), merge it into raw (loading), derive what it
changes in core and the marts (derive, steps), under the home's lock (lock), reporting progress
(progress); load_run ties one load together."""
