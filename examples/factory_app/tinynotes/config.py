"""Configurations create_app() can be given by name."""


class Config:
    TITLE = "Tiny Notes"
    NOTES = (
        {"title": "Groceries", "body": "Flour, butter, apples."},
        {"title": "Call the plumber", "body": "The kitchen tap drips again."},
        {"title": "Reading list", "body": "The Mythical Man-Month."},
    )


class DevelopmentConfig(Config):
    TITLE = "Tiny Notes (development)"


class ProductionConfig(Config):
    pass


class TestingConfig(Config):
    TESTING = True


BY_NAME = {
    "development": DevelopmentConfig,
    "production": ProductionConfig,
    "testing": TestingConfig,
}
