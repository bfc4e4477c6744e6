"""The post-deploy hooks the stick ships: each names the freshly written system."""
